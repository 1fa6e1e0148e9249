"""API keys: issued once, stored as a hash, verified, revoked; the `apikey` command."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import select

from db.engine import session_scope
from db.models import ApiKey, AuditEntry
from recsys.serving.keys import KeyVerifier, issue_key, list_keys, revoke_key


def stored_keys(url: str) -> list[ApiKey]:
    with session_scope(url) as session:
        return session.scalars(select(ApiKey)).all()


def test_only_the_hash_and_a_prefix_are_stored(db_url):
    issued = issue_key("frontend", actor="alice", url=db_url)
    assert issued.key.startswith("rk_") and len(issued.key) == 46
    [stored] = stored_keys(db_url)
    assert stored.key_hash == hashlib.sha256(issued.key.encode()).hexdigest()
    assert stored.prefix == issued.key[:8] and stored.created_by == "alice"
    assert issued.key not in {str(getattr(stored, c.name)) for c in ApiKey.__table__.columns}


def test_verify_and_revoke(db_url):
    first = issue_key("a", actor="t", url=db_url)
    second = issue_key("b", actor="t", url=db_url)
    verifier = KeyVerifier(db_url, refresh_s=0)
    assert verifier.verify(first.key) == first.id and verifier.verify(second.key) == second.id
    assert verifier.verify(first.key + "x") is None and verifier.verify("") is None
    assert verifier.verify(None) is None
    revoke_key(first.id, actor="t", url=db_url)
    assert verifier.verify(first.key) is None and verifier.verify(second.key) == second.id
    keys = list_keys(db_url)
    assert "key_hash" not in keys.columns
    assert keys.set_index("id").loc[first.id, "revoked_at"] is not None


def test_issue_and_revoke_are_audited(db_url):
    issued = issue_key("a", actor="alice", url=db_url)
    revoke_key(issued.id, actor="bob", url=db_url)
    with session_scope(db_url) as session:
        actions = session.execute(select(AuditEntry.actor, AuditEntry.action)).all()
    assert ("alice", "issue_api_key") in actions and ("bob", "revoke_api_key") in actions


def test_cli_prints_the_key_once_and_stores_its_hash(db_url, capsys):
    from recsys.serving.cli import main

    assert main(["apikey", "create", "--name", "shop"]) == 0
    out, err = capsys.readouterr()
    printed = json.loads(out)
    assert "only this once" in err
    [stored] = stored_keys(db_url)
    assert stored.key_hash == hashlib.sha256(printed["key"].encode()).hexdigest()
    assert printed["key"] not in out.replace(printed["key"], "", 1)  # printed once
    assert main(["apikey", "list"]) == 0
    listed = capsys.readouterr().out
    assert printed["key"] not in listed and stored.key_hash not in listed
    assert main(["apikey", "revoke", "--id", str(printed["id"])]) == 0
    assert main(["apikey", "revoke", "--id", "999"]) == 1
    assert "no API key with id 999" in capsys.readouterr().err


def test_cli_needs_a_name(db_url, capsys):
    from recsys.serving.cli import main

    assert main(["apikey", "create"]) == 1
    assert "--name" in capsys.readouterr().err


def test_a_key_issued_after_the_last_read_works_at_once_and_random_keys_cost_little(db_url, monkeypatch):
    from recsys.serving import keys

    verifier = keys.KeyVerifier(db_url, refresh_s=3600)
    verifier.refresh()
    fresh = keys.issue_key("late", actor="test", url=db_url)
    reads = []
    original = verifier.refresh
    monkeypatch.setattr(verifier, "refresh", lambda: (reads.append(1), original())[1])
    verifier._loaded_at -= keys.KeyVerifier.MISS_REFRESH_S  # the last read was a second ago
    assert verifier.verify(fresh.key) == fresh.id and len(reads) == 1
    for _ in range(50):  # a client guessing keys: at most one read a second
        assert verifier.verify("rk_" + "x" * 43) is None
    assert len(reads) == 1
