"""A schema-driven fuzzer (schemathesis) against the app's own OpenAPI schema: no request gets a 5xx.

Requests are generated from the schema, valid and invalid ones (wrong types, missing or extra fields, IDs
that do not exist), and every response must be a documented status below 500 whose body conforms to the
schema, and invalid requests must be refused. Bounded in examples, so it takes seconds.

One check is left out: that every schema-valid request is accepted. Some rules cannot be said in JSON
Schema (send a user or a history, not both; timestamps for every event or none), and others depend on the
data (a category or item the catalogue does not have); such requests get a 422 that says why.

(Hypothesis drives each operation's strategy directly: schemathesis' own pytest integration does not run
under pytest 9 yet.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from intentrec.serving.app import create_app

OPERATIONS = ["POST /recommend", "GET /items/{item}/similar", "GET /health", "GET /metadata"]


@pytest.fixture(scope="module")
def api(service):
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(service))


def test_every_operation_is_fuzzed(api) -> None:
    assert sorted(f"{op.ok().method.upper()} {op.ok().path}" for op in api.get_all_operations()) == sorted(
        OPERATIONS
    )


@pytest.mark.parametrize("operation", OPERATIONS)
def test_no_request_gets_a_server_error(api, operation) -> None:
    method, path = operation.split()

    @given(case=api[path][method].as_strategy())
    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def fuzz(case) -> None:
        case.call_and_validate(excluded_checks=[positive_data_acceptance])

    fuzz()
