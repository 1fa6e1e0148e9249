"""Property-based tests of the REST API from its own OpenAPI schema (schemathesis): whatever a client
sends that the schema allows, and much that it does not, the service answers without a server error,
with a status the schema documents and a body that matches it.

One check is left out: that every request the schema allows is accepted. Some are refused for what
no schema can say (a product id the catalog does not have, a request id never answered), with the
422 the schema documents."""

from __future__ import annotations

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance


def test_no_request_gets_a_server_error_or_an_undocumented_answer(db_url, engine, api_key):
    from recsys.serving.app import create_app

    app = create_app(db_url, engine, compute_threads=0, metrics_interval_s=0.05, alerts_interval_s=None)
    with TestClient(app):  # the lifespan: engine, key check, writers, live events
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        checked = []
        for found in schema.get_all_operations():
            operation = found.ok()

            @given(case=operation.as_strategy())
            @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
            def answers_as_documented(case):
                case.call_and_validate(headers={"X-API-Key": api_key},
                                       excluded_checks=[positive_data_acceptance])

            answers_as_documented()
            checked.append(operation.label)
    assert {"GET /search", "POST /events", "GET /health"} <= set(checked)
