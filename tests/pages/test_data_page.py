"""pages/data.py: overview charts, upload with report, versions, weights, by role."""

from __future__ import annotations

from db import queries
from db.engine import session_scope
from tests.conftest import CATALOG_CSV
from tests.pages.conftest import app_as, shown


def test_overview_shows_metrics_and_charts(shop):
    app = app_as("viewer", "pages/data.py")
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Products in the active catalog"] == "4"
    assert metrics["Events"] == "5" and metrics["Customers"] == "3"
    assert len(app.get("plotly_chart")) == 4


def test_viewer_cannot_upload_or_activate(shop):
    app = app_as("viewer", "pages/data.py")
    assert not [w for w in app.get("file_uploader")]
    assert any("operators and admins upload" in i.value for i in app.info)
    assert not [b for b in app.button if b.label == "Activate"]


def test_operator_uploads_a_bad_file_and_sees_row_and_column(shop):
    app = app_as("operator", "pages/data.py")
    app.selectbox(key="upload_kind").select("catalog").run()
    bad = CATALOG_CSV.replace("P2,Blue mug,kitchen,3.00", "P2,Blue mug,kitchen,three")
    app.get("file_uploader")[0].set_value(("cat.csv", bad.encode(), "text/csv"))
    app.run()
    next(b for b in app.button if b.label == "Upload and activate").click().run()
    assert not app.exception
    assert any("rejected" in e.value for e in app.error)
    problems = next(d.value for d in app.dataframe if "reason" in d.value.columns)
    assert problems.iloc[0][["row", "line", "column", "value"]].tolist() == [2, 3, "price", "three"]
    with session_scope() as session:
        assert queries.active_version(session, "catalog").id == 1


def test_operator_uploads_a_good_file_with_mapping(shop):
    app = app_as("operator", "pages/data.py")
    app.selectbox(key="upload_kind").select("catalog").run()
    text = "sku;name;price\nQ1; Lamp ;9.5\nQ1;Lamp;10.5\nPOST;Postage;3\n"
    app.get("file_uploader")[0].set_value(("lamps.csv", text.encode(), "text/csv"))
    app.run()
    assert app.selectbox(key="map_catalog_product_id").value == "sku"
    assert app.selectbox(key="map_catalog_title").value == "name"
    app.checkbox(key="upload_confirm_replace").check().run()  # the shop's events refer to P1-P4
    next(b for b in app.button if b.label == "Upload and activate").click().run()
    assert not app.exception
    assert any("Stored and activated as version(s) 3" in s.value for s in app.success)
    with session_scope() as session:
        products = queries.products_frame(session, 3)
    assert products[["product_id", "title", "price"]].values.tolist() == [["Q1", "Lamp", 10.0]]


def test_operator_activates_and_rolls_back(shop, catalog_file):
    from recsys.data import IngestOptions, ingest_file

    ingest_file(catalog_file, IngestOptions("catalog"), actor="test")  # catalog v3
    app = app_as("operator", "pages/data.py")
    app.selectbox(key="rollback_kind").select("catalog")
    next(b for b in app.button if b.label == "Roll back to the previous version").click().run()
    assert not app.exception
    with session_scope() as session:
        assert queries.active_version(session, "catalog").id == 1
    app.selectbox(key="activate_version").select(3)
    next(b for b in app.button if b.label == "Activate").click().run()
    with session_scope() as session:
        assert queries.active_version(session, "catalog").id == 3
        actions = queries.audit_log(session)
    assert {"rollback", "activate"} <= set(actions["action"])
    assert set(actions[actions["action"] == "rollback"]["actor"]) == {"operator1"}


def test_operator_saves_implicit_weights(shop):
    app = app_as("operator", "pages/data.py")
    app.number_input(key="weight_purchase").set_value(7.0)
    next(b for b in app.button if b.label == "Save weights").click().run()
    with session_scope() as session:
        assert queries.get_setting(session, "implicit_weights")["purchase"] == 7.0


def test_a_new_file_starts_with_fresh_column_guesses_and_no_old_result(shop):
    app = app_as("operator", "pages/data.py")
    app.selectbox(key="upload_kind").select("catalog").run()
    app.get("file_uploader")[0].set_value(("no_title.csv", b"product_id,colour\nQ1,red\n", "text/csv")).run()
    assert app.selectbox(key="map_catalog_title").value == "(not in file)"
    app.radio(key="upload_catalog_how").set_value("merge").run()
    next(b for b in app.button if b.label == "Upload and activate").click().run()
    problems = next(d.value for d in app.dataframe if "reason" in d.value.columns)
    assert "title" in problems.iloc[0]["reason"]

    app.get("file_uploader")[0].set_value(("good.csv", b"product_id,title\nQ1,Lamp\nQ2,Desk\n", "text/csv")).run()
    assert app.selectbox(key="map_catalog_title").value == "title"
    assert not app.error and not [s for s in app.success if "Stored" in s.value]  # the first file's result is gone with it
    next(b for b in app.button if b.label == "Upload and activate").click().run()
    assert not app.exception and not app.error
    assert [s.value for s in app.success if "Stored and activated" in s.value]


def test_a_small_catalog_says_what_it_would_replace_and_can_be_merged_instead(shop):
    app = app_as("operator", "pages/data.py")
    app.selectbox(key="upload_kind").select("catalog").run()
    app.get("file_uploader")[0].set_value(("five.csv", b"product_id,title\nP1,Red mug v2\nQ2,Lamp\n", "text/csv"))
    app.run()
    warning = next(shown(w.value) for w in app.warning if "active catalog has 4 products" in w.value)
    assert "replaced by this file, it will have 2 (1 new, 1 updated, 3 gone)" in warning
    assert "3 products that the active behaviour data refers to" in warning
    store = next(b for b in app.button if b.label == "Upload and activate")
    assert store.disabled  # a replacement that orphans products waits for its confirmation

    app.radio(key="upload_catalog_how").set_value("merge").run()
    assert any("merged into it, it will have 5 (1 new, 1 updated, 0 gone)" in shown(c.value)
               for c in app.caption)
    next(b for b in app.button if b.label == "Upload and activate").click().run()
    assert not app.exception
    with session_scope() as session:
        merged = queries.products_frame(session, queries.active_version(session, "catalog").id)
    assert dict(zip(merged["product_id"], merged["title"])) == {
        "P1": "Red mug v2", "Q2": "Lamp", "P2": "Blue mug", "P3": "Green teapot", "P4": "Garden chair"}


def test_replacing_the_catalog_anyway_needs_a_confirmation(shop):
    app = app_as("operator", "pages/data.py")
    app.selectbox(key="upload_kind").select("catalog").run()
    app.get("file_uploader")[0].set_value(("two.csv", b"product_id,title\nQ1,Lamp\nQ2,Desk\n", "text/csv"))
    app.run()
    app.checkbox(key="upload_confirm_replace").check().run()
    store = next(b for b in app.button if b.label == "Upload and activate")
    assert not store.disabled
    store.click().run()
    with session_scope() as session:
        assert queries.active_version(session, "catalog").row_count == 2


def test_an_upload_says_what_was_pseudonymised_and_masked(shop):
    app = app_as("operator", "pages/data.py")
    app.selectbox(key="upload_kind").select("search_log").run()
    text = ('query,user_id,product_id\nred mug,cust-5521,P1\n'
            '"mug, mail me at jo.private@example.org",cust-5521,P2\nteapot call 020 7946 0958,cust-9001,P3\n')
    app.get("file_uploader")[0].set_value(("log.csv", text.encode(), "text/csv"))
    app.run()
    next(b for b in app.button if b.label == "Upload and activate").click().run()
    assert not app.exception
    privacy = next(m.value for m in app.markdown if m.value.startswith("**Privacy**"))
    assert "2 customers (3 rows) pseudonymised" in privacy
    assert "personal data masked in 2 rows (1 email, 1 phone)" in privacy
    examples = next(d.value for d in app.dataframe if list(d.value.columns) == ["text"])
    assert sorted(examples["text"]) == ["mug, mail me at [email]", "teapot call [phone]"]
    # The file's preview shows the uploader their own file; what is stored and reported does not.
    report = " ".join(s.value for s in app.success) + privacy
    assert "cust-5521" not in report and "jo.private" not in report
