"""Schemathesis against the internal API on a real gateway process.

Every internal operation of ``gateway/openapi.yaml`` is called with generated data (valid and
invalid); every answer must be documented (status, content type, body schema) and none
may be a 5xx. Two of schemathesis' checks are left out: "valid data must be accepted"
(schema-valid data may break a business rule: an expiry in the past, a cursor the
gateway never issued) and "invalid data must be rejected" (the test always sends the
bearer token, which undoes generated requests whose only fault is a missing token).
Path ids point at a real account (and key) most of the time, so the
generated bodies reach the handlers instead of stopping at a 404.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

OPENAPI = Path(__file__).resolve().parents[2] / "gateway" / "openapi.yaml"

# The public API's operations (tagged "public") are documented in the same file but served
# on the public listener with a customer's key; their own tests cover them.
schema = schemathesis.openapi.from_path(OPENAPI).exclude(tag="public")


@pytest.fixture(scope="module")
def fuzz_target(gateway):
    """A funded account with one key for the generated requests to land on."""
    account_id = gateway.create_account(10 * 1_000_000, email="fuzz@example.com")
    key = gateway.create_key(account_id, name="fuzz key")
    return {"account_id": account_id, "key_id": key["id"]}


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_internal_api_answers_as_documented_and_never_5xx(case, gateway, fuzz_target):
    parameters = case.path_parameters or {}
    for name in ("account_id", "key_id"):
        if name in parameters and hash(str(parameters[name])) % 4:
            parameters[name] = fuzz_target[name]
    response = case.call_and_validate(base_url=f"{gateway.internal_url}/internal",
                                      headers={"Authorization": f"Bearer {gateway.token}"}, timeout=30,
                                      excluded_checks=[positive_data_acceptance, negative_data_rejection])
    assert response.status_code < 500, response.text[:500]
