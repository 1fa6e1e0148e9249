"""The keys: made at the first start outside the database, the pseudonymisation key encrypted
with the master key, environment settings first, rotation that keeps or changes pseudonyms."""

from __future__ import annotations

import stat

import pytest
from cryptography.fernet import Fernet

from recsys.privacy import keys
from recsys.privacy.pseudonyms import Pseudonymiser, pseudonymise


@pytest.fixture
def key_files(tmp_path, monkeypatch):
    """Empty key locations, as on a new machine."""
    monkeypatch.setenv(keys.KEYS_DIR_ENV, str(tmp_path / "var"))
    monkeypatch.setenv(keys.SECRETS_FILE_ENV, str(tmp_path / ".streamlit" / "secrets.toml"))
    monkeypatch.delenv(keys.MASTER_ENV, raising=False)
    monkeypatch.delenv(keys.PSEUDONYM_ENV, raising=False)
    keys.forget_cached_keys()
    yield tmp_path
    keys.forget_cached_keys()


def test_the_first_start_makes_both_keys_readable_by_their_owner_only(key_files):
    key = keys.pseudonym_key()
    assert key.created and len(key.secret) == 32
    master, secrets = key_files / "var" / "master.key", key_files / ".streamlit" / "secrets.toml"
    for path in (master, secrets):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = secrets.read_text()
    assert "[privacy]" in stored and key.secret.hex() not in stored  # encrypted, not in clear
    again = keys.pseudonym_key()
    assert not again.created and again.secret == key.secret  # later starts read the same key


def test_secrets_toml_keeps_what_the_operator_put_there(key_files):
    secrets = key_files / ".streamlit" / "secrets.toml"
    secrets.parent.mkdir()
    secrets.write_text('[admin]\npassword = "from-secrets-9"\n')
    keys.pseudonym_key()
    text = secrets.read_text()
    assert text.startswith('[admin]\npassword = "from-secrets-9"\n') and "pseudonym_key" in text


def test_a_wrong_master_key_names_the_problem_instead_of_making_new_pseudonyms(key_files, monkeypatch):
    keys.pseudonym_key()
    monkeypatch.setenv(keys.MASTER_ENV, Fernet.generate_key().decode())
    with pytest.raises(keys.KeysError, match="cannot be decrypted with the master key"):
        keys.pseudonym_key()
    monkeypatch.setenv(keys.MASTER_ENV, "not-a-key")
    with pytest.raises(keys.KeysError, match="is not a Fernet key"):
        keys.master_key()


def test_the_environment_comes_first(key_files, monkeypatch):
    monkeypatch.setenv(keys.PSEUDONYM_ENV, "x" * 40)
    key = keys.pseudonym_key()
    assert key.secret == b"x" * 40 and "environment" in key.where
    assert not (key_files / ".streamlit" / "secrets.toml").exists()
    monkeypatch.setenv(keys.PSEUDONYM_ENV, "short")
    with pytest.raises(keys.KeysError, match="at least 32"):
        keys.pseudonym_key()


def test_rotating_the_master_key_keeps_the_pseudonyms(key_files):
    before = pseudonymise("17850")
    old_master = keys.master_key()
    old, new = keys.rotate_master()
    assert old.fingerprint == old_master.fingerprint != new.fingerprint
    assert keys.master_key().fingerprint == new.fingerprint
    assert pseudonymise("17850") == before  # the same pseudonymisation key, re-encrypted


def test_rotating_the_master_key_from_the_environment_leaves_the_new_key_to_set(key_files, monkeypatch):
    first = Fernet.generate_key().decode()
    monkeypatch.setenv(keys.MASTER_ENV, first)
    before = pseudonymise("17850")
    second = keys.new_master_key()
    keys.rotate_master(second)
    assert not (key_files / "var" / "master.key").exists()
    with pytest.raises(keys.KeysError):  # the stored key now needs the new master key ...
        keys.pseudonym_key()
    monkeypatch.setenv(keys.MASTER_ENV, second)  # ... which the operator sets
    keys.forget_cached_keys()
    assert pseudonymise("17850") == before


def test_rotating_the_pseudonymisation_key_gives_new_pseudonyms(key_files, monkeypatch):
    before = pseudonymise("17850")
    old, new = keys.rotate_pseudonym_key()
    assert old.fingerprint != new.fingerprint
    assert pseudonymise("17850") != before and Pseudonymiser.is_pseudonym(pseudonymise("17850"))
    monkeypatch.setenv(keys.PSEUDONYM_ENV, "y" * 40)
    with pytest.raises(keys.KeysError, match="set a new value there"):
        keys.rotate_pseudonym_key()


def test_the_keys_cli_prints_fingerprints_never_keys(key_files, db_url, capsys):
    import json

    from recsys.cli import main

    assert main(["keys", "status"]) == 0
    printed = capsys.readouterr().out
    status = json.loads(printed)
    key = keys.pseudonym_key()
    assert status["pseudonymisation_key"]["fingerprint"] == key.fingerprint
    assert key.secret.hex() not in printed and keys.master_key().secret.decode() not in printed
    assert main(["keys", "rotate-pseudonyms"]) == 1
    assert "--unlink" in capsys.readouterr().err
    assert main(["keys", "rotate-pseudonyms", "--unlink"]) == 0
    assert keys.pseudonym_key().fingerprint != key.fingerprint
