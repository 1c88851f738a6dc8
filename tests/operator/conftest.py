"""Operator console fixtures: an operator and a customer signed in to the same portal app."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

from fixtures.portal import login
from operator_helpers import enable_two_factor, sign_in_with_code


@pytest.fixture
def operator(make_user, portal_app):
    """A signed-up user with the operator role and two-factor sign-in on (``.secret``)."""
    user = make_user(email=f"ops-{uuid.uuid4().hex[:10]}@example.com", timezone="UTC", is_operator=True)
    return SimpleNamespace(**user.__dict__, secret=enable_two_factor(portal_app, user.id))


@pytest.fixture
def operator_client(portal_app, operator):
    """A client signed in as ``operator`` (password, then authenticator code)."""
    client = portal_app.test_client()
    sign_in_with_code(client, operator.email, operator.password, operator.secret)
    client.user = operator
    return client


@pytest.fixture
def customer(make_user, gateway):
    """A customer with 1,000 P and one API key (``.key`` is the full key)."""
    user = make_user(timezone="UTC")
    answer = gateway.internal("POST", f"/accounts/{user.account_id}/ledger", json={
        "kind": "credit", "amount_micro_p": 1_000_000_000, "idempotency_key": f"op-test-{uuid.uuid4()}"})
    assert answer.status_code == 201, answer.text
    key = gateway.create_key(user.account_id, name="customer key")
    return SimpleNamespace(**user.__dict__, key=key["key"], key_id=key["id"])


@pytest.fixture
def customer_client(portal_app, customer):
    """A client signed in as ``customer`` (no operator role)."""
    client = portal_app.test_client()
    assert login(client, customer.email, customer.password).status_code == 303
    return client

