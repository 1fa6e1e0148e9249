"""The keys of the workbench, kept outside the database.

- The master key (Fernet, from `cryptography`) encrypts every secret the workbench stores. It comes
  from `WORKBENCH_MASTER_KEY`; without it, one is created at the first start in `var/master.key`
  (readable by its owner only) and a warning says to move it to the environment in production.
- The pseudonymisation key (HMAC-SHA-256 of customer ids) comes from `WORKBENCH_PSEUDONYM_KEY`;
  without it, one is created at the first start and kept in `.streamlit/secrets.toml` as
  `[privacy] pseudonym_key`, encrypted with the master key.

Neither key is ever written to SQL or a log; `fingerprint` names a key without revealing it.
`WORKBENCH_KEYS_DIR` and `WORKBENCH_SECRETS_FILE` move the two files (the tests use both).

>>> fingerprint(b"k" * 32)
'fde7fcf290e8'
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import re
import secrets
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

MASTER_ENV = "WORKBENCH_MASTER_KEY"
PSEUDONYM_ENV = "WORKBENCH_PSEUDONYM_KEY"
KEYS_DIR_ENV = "WORKBENCH_KEYS_DIR"
SECRETS_FILE_ENV = "WORKBENCH_SECRETS_FILE"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
MIN_PSEUDONYM_KEY_CHARS = 32
_PSEUDONYM_LINE = re.compile(r"^pseudonym_key\s*=.*$", re.MULTILINE)
_PRIVACY_TABLE = re.compile(r"^\[privacy\]\s*$", re.MULTILINE)


class KeysError(ValueError):
    """A key that is set but cannot be used; the message says which and how to fix it."""


@dataclass(frozen=True)
class Key:
    """A key and where it came from (never printed: `where` and `fingerprint` are)."""

    name: str
    secret: bytes
    where: str
    created: bool = False

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.secret)

    def describe(self) -> str:
        return f"{self.name}: from {self.where}, fingerprint {self.fingerprint}"


def fingerprint(secret: bytes) -> str:
    """The first 12 hex digits of a hash of `secret`: tells keys apart, reveals nothing."""
    return hashlib.sha256(b"workbench key fingerprint\0" + secret).hexdigest()[:12]


def keys_dir() -> Path:
    return Path(os.environ.get(KEYS_DIR_ENV) or PROJECT_ROOT / "var")


def secrets_file() -> Path:
    return Path(os.environ.get(SECRETS_FILE_ENV) or PROJECT_ROOT / ".streamlit" / "secrets.toml")


@contextmanager
def _locked() -> Iterator[None]:
    """One process at a time creates or rotates keys (the app and the service start together)."""
    folder = keys_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".keys.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` readable by its owner only, replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.replace(partial, path)


def _master_from_environment() -> Key | None:
    value = os.environ.get(MASTER_ENV, "").strip()
    if not value:
        return None
    try:
        Fernet(value)
    except ValueError:
        raise KeysError(f"{MASTER_ENV} is not a Fernet key (32 url-safe base64-encoded bytes); make "
                        "one with: python -m recsys keys new-master") from None
    return Key("master key", value.encode(), f"the environment ({MASTER_ENV})")


def master_key() -> Key:
    """The master key: from the environment, else `var/master.key` (created when missing)."""
    key = _master_from_environment()
    if key is not None:
        return key
    path = keys_dir() / "master.key"
    with _locked():
        created = not path.exists()
        if created:
            _write_private(path, Fernet.generate_key().decode() + "\n")
            print(f"Created the master key in {path}. In production, keep it in {MASTER_ENV} "
                  "instead (see docs/security.md).", file=sys.stderr)
    value = path.read_text().strip()
    try:
        Fernet(value)
    except ValueError:
        raise KeysError(f"{path} does not hold a Fernet key; restore it from your backup") from None
    return Key("master key", value.encode(), str(path), created)


def encrypt(secret: bytes, master: Key | None = None) -> str:
    """`secret` as a Fernet token under the master key."""
    return Fernet((master or master_key()).secret).encrypt(secret).decode()


def decrypt(token: str, master: Key | None = None, *, what: str = "a stored secret") -> bytes:
    master = master or master_key()
    try:
        return Fernet(master.secret).decrypt(token.encode())
    except InvalidToken:
        raise KeysError(f"{what} cannot be decrypted with the master key from {master.where} "
                        f"(fingerprint {master.fingerprint}); set the master key it was made with") from None


def _stored_token(path: Path) -> str | None:
    if not path.exists():
        return None
    with path.open("rb") as handle:
        try:
            data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as error:
            raise KeysError(f"{path} is not valid TOML ({error}); fix it or move it away") from None
    token = data.get("privacy", {}).get("pseudonym_key")
    return str(token) if token else None


def _store_token(path: Path, token: str) -> None:
    """Put `pseudonym_key = "token"` in the [privacy] table of `path`, keeping everything else."""
    line = f'pseudonym_key = "{token}"'
    text = path.read_text() if path.exists() else ""
    if _PSEUDONYM_LINE.search(text):
        text = _PSEUDONYM_LINE.sub(line, text, count=1)
    elif _PRIVACY_TABLE.search(text):
        text = _PRIVACY_TABLE.sub(lambda match: f"{match.group(0)}\n{line}", text, count=1)
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + f"[privacy]\n{line}\n"
    _write_private(path, text)


def pseudonym_key() -> Key:
    """The pseudonymisation key: from the environment, else decrypted from secrets.toml (created
    there, encrypted with the master key, when missing)."""
    value = os.environ.get(PSEUDONYM_ENV, "").strip()
    if value:
        if len(value) < MIN_PSEUDONYM_KEY_CHARS:
            raise KeysError(f"{PSEUDONYM_ENV} has {len(value)} characters; use at least "
                            f"{MIN_PSEUDONYM_KEY_CHARS} random ones, e.g. python -c "
                            "\"import secrets; print(secrets.token_hex(32))\"")
        return Key("pseudonymisation key", value.encode(), f"the environment ({PSEUDONYM_ENV})")
    master = master_key()
    path = secrets_file()
    with _locked():
        token = _stored_token(path)
        created = token is None
        if created:
            token = encrypt(secrets.token_bytes(32), master)
            _store_token(path, token)
    secret = decrypt(token, master, what=f"[privacy] pseudonym_key in {path}")
    return Key("pseudonymisation key", secret, f"{path} (encrypted with the master key)", created)


@functools.cache
def _cached(*settings: str) -> Key:
    return pseudonym_key()


def current_pseudonym_key() -> Key:
    """`pseudonym_key()`, read once per process and set of settings (it is asked on every request)."""
    return _cached(os.environ.get(PSEUDONYM_ENV, ""), os.environ.get(MASTER_ENV, ""),
                   str(keys_dir()), str(secrets_file()))


def forget_cached_keys() -> None:
    _cached.cache_clear()


def new_master_key() -> str:
    return Fernet.generate_key().decode()


def rotate_master(new_key: str | None = None) -> tuple[Key, Key]:
    """Re-encrypt the stored pseudonymisation key under a new master key; (old, new).

    With the master key in the environment, the caller must set the new one there before the
    next start (the command prints it); with the key file, the file is replaced.
    """
    old = master_key()
    new_value = new_key or new_master_key()
    try:
        Fernet(new_value)
    except ValueError:
        raise KeysError("the new master key is not a Fernet key") from None
    new = Key("master key", new_value.encode(), old.where)
    path = secrets_file()
    with _locked():
        token = _stored_token(path)
        if token is not None:
            rotated = MultiFernet([Fernet(new.secret), Fernet(old.secret)]).rotate(token.encode())
            _store_token(path, rotated.decode())
        if _master_from_environment() is None:
            _write_private(keys_dir() / "master.key", new_value + "\n")
    forget_cached_keys()
    return old, new


def rotate_pseudonym_key() -> tuple[Key, Key]:
    """A new pseudonymisation key in secrets.toml; (old, new). Stored pseudonyms stay as they
    are: the workbench keeps no raw ids, so they cannot be re-keyed and are unlinked from the
    customers' future requests."""
    if os.environ.get(PSEUDONYM_ENV, "").strip():
        raise KeysError(f"the pseudonymisation key comes from {PSEUDONYM_ENV}; set a new value "
                        "there instead (then restart the app, the service and the workers)")
    old = pseudonym_key()
    master = master_key()
    with _locked():
        _store_token(secrets_file(), encrypt(secrets.token_bytes(32), master))
    forget_cached_keys()
    return old, pseudonym_key()
