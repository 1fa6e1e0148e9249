"""Privacy by design: customer ids pseudonymised with a keyed hash, personal data in free text
masked, and the keys that do it kept outside the database (encrypted with a master key).

- `keys`: the master key (Fernet) and the pseudonymisation key, where they come from, rotation
- `pseudonyms`: `Pseudonymiser`, the HMAC-SHA-256 of a customer id
- `masking`: e-mail addresses, phone and card numbers, IBANs, national ids and postcodes in text
- `protect`: both applied to an upload's frame, with what was done counted for its report
"""
