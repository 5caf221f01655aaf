"""The OpenAPI document against the running API: schemathesis generates requests for every operation
(as an administrator, who may call them all) and checks that none fails with a 5xx and every answer
matches the document: status codes, media types, bodies and headers."""

from __future__ import annotations

import collections

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from boomerang import provisioning
from boomerang.store import transaction
from boomerang.store.models import Role
from tests.portalkit import Portal

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
EXAMPLES_PER_OPERATION = 25


@pytest.fixture
def portal(migrated, db) -> Portal:
    portal = Portal(migrated, db)
    portal.account("root", role=Role.ADMIN, balance="10")
    alice = portal.account("alice", balance="5")
    portal.call(alice)
    with transaction(db) as session:
        provisioning.create_tariff(session, "retail", "USD")
        provisioning.import_rates(session, "retail", "prefix,destination,price_per_minute\n44,United Kingdom,0.10\n")
    return portal


def test_every_operation_answers_as_documented(portal):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", portal.app)
    root = portal.bearer("root")
    headers = root.headers
    own_token = root.get("/api/tokens").json["items"][0]["id"]
    failures = []
    statuses: list[int] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case):
            if case.path == "/api/session" and case.method == "DELETE":
                return  # would end the signed-in principal's session: tested in test_portal_auth.py
            if case.path == "/api/tokens/{token_id}" and case.path_parameters.get("token_id") == own_token:
                return  # would revoke the token this test signs in with
            case.headers = {**(case.headers or {}), **headers}  # ours, not a generated token
            response = case.call_and_validate(checks=CHECKS)
            statuses.append(response.status_code)

        try:
            check()
        except Exception as failure:  # noqa: BLE001  (collected, so one report names every operation)
            failures.append(f"{operation.method.upper()} {operation.path}: {failure}")
    assert operations >= 40 and len(statuses) >= operations * 5
    # The requests reached the API as the administrator: most got past authentication.
    assert collections.Counter(statuses)[200] > operations
    assert not failures, "\n\n".join(failures)
