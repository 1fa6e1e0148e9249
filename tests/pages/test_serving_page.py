"""pages/serving.py: status, the keys list, issue (shown once) and revoke, by role."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from db.engine import session_scope
from db.models import ApiKey, AuditEntry
from tests.pages.conftest import app_as


def test_viewer_sees_status_and_keys_but_cannot_issue(shop):
    app = app_as("viewer", "pages/serving.py")
    assert not app.exception
    assert any("No service answers" in w.value for w in app.warning)
    assert any("No API key yet" in i.value for i in app.info)
    assert not [b for b in app.button if b.label in ("Issue a key", "Revoke")]


def test_operator_issues_a_key_shown_once_then_revokes_it(shop):
    app = app_as("operator", "pages/serving.py")
    app.text_input(key="issue_key_name").input("shop-frontend")
    next(b for b in app.button if b.label == "Issue a key").click().run()
    assert not app.exception
    [key] = [c.value for c in app.code]
    with session_scope() as session:
        stored = session.scalars(select(ApiKey)).one()
        assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert stored.created_by == "operator1"
    table = app.dataframe[0].value
    assert table["name"].tolist() == ["shop-frontend"] and table["status"].tolist() == ["active"]
    assert key not in table.to_string()

    app.run()  # any next run: the key is gone
    assert not app.code
    next(b for b in app.button if b.label == "Revoke").click().run()
    assert not app.exception
    assert app.dataframe[0].value["status"].tolist() == ["revoked"]
    with session_scope() as session:
        actions = session.scalars(select(AuditEntry.action).where(
            AuditEntry.actor == "operator1")).all()
    assert "issue_api_key" in actions and "revoke_api_key" in actions


def test_a_key_needs_a_name(shop):
    app = app_as("admin", "pages/serving.py")
    next(b for b in app.button if b.label == "Issue a key").click().run()
    assert any("needs a name" in w.value for w in app.warning)


def test_the_console_calls_the_running_service_and_the_request_is_recorded(shop, monkeypatch):
    import socket
    import threading
    import time

    import uvicorn

    from db.models import RequestMetric
    from recsys.accounts import Identity
    from recsys.ads import campaigns
    from recsys.ads.serving import AdServer
    from recsys.serving.app import create_app

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(shop, metrics_interval_s=0.05, alerts_interval_s=None,
                                                      follow_s=0.2), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        monkeypatch.setenv("WORKBENCH_SERVICE_URL", f"http://127.0.0.1:{port}")
        app = app_as("merchandiser", "pages/serving.py")
        assert any("is up" in s.value for s in app.success)
        app.text_input(key="console_query").input("red mug").run()
        app.button(key="console_send").click().run(timeout=60)
        assert not app.exception and not app.error
        items = next(frame.value for frame in app.dataframe if "title" in frame.value)
        assert items["product"].tolist()[0] == "P1"
        assert any("→ 200" in c.value for c in app.caption)
        deadline = time.time() + 10
        while time.time() < deadline:
            with session_scope() as session:
                recorded = session.scalars(select(RequestMetric.endpoint)).all()
            if recorded:
                break
            time.sleep(0.1)
        assert recorded == ["/search"]  # Monitoring shows the console's requests like any other
        # A click on the first result, as a shop's front end sends it: organic, so nothing is charged.
        app.button(key="console_click").click().run(timeout=60)
        assert not app.exception and not app.error
        assert any("→ 202" in c.value for c in app.caption)
        assert any("an organic result: nothing charged" in s.value for s in app.success)
        # A campaign for the blue mug: on a page of one result for "mug" (the red one), the shipped
        # preset's slot 1 shows it, labelled, and a click on it is charged (alone: the reserve price).
        campaigns.create_campaign(Identity("op", "operator"), advertiser="Acme", name="Mugs", products=["P2"],
                                  max_cpc=0.3, daily_budget=5.0)
        time.sleep(AdServer(shop).refresh_s)  # the service reads the campaigns again within this
        app.text_input(key="console_query").input("mug")
        app.number_input(key="console_k").set_value(1)
        app.button(key="console_send").click().run(timeout=60)
        items = next(frame.value for frame in app.dataframe if "title" in frame.value)
        assert items["sponsored"].tolist()[0] == "ad, campaign 1" and items["product"].tolist()[0] == "P2"
        app.button(key="console_click").click().run(timeout=60)
        assert any("Click on an ad of campaign 1: charged, 0.05 charged" in s.value for s in app.success)
        viewer = app_as("viewer", "pages/serving.py")
        assert not [b for b in viewer.button if b.key == "console_send"]
    finally:
        server.should_exit = True
        thread.join(timeout=20)
