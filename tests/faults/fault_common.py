"""Shared pieces of the fault tests: funded accounts, the ledger invariant, polling."""

from __future__ import annotations

import time
from typing import Callable

import requests

ONE_P = 1_000_000


def chat(gateway_url: str, key: str, text: str = "hello", stream: bool = False, timeout: float = 30,
         model: str = "deepseek-v3.2") -> requests.Response:
    """One chat completion through the public API."""
    body = {"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": text}], "stream": stream}
    return requests.post(f"{gateway_url}/v1/chat/completions", json=body, timeout=timeout,
                         headers={"Authorization": f"Bearer {key}"})


def ledger_entries(gateway, account_id: str) -> list[dict]:
    """Every ledger entry of the account, through the internal API's pages."""
    entries, cursor = [], None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = gateway.internal("GET", f"/accounts/{account_id}/ledger", params=params).json()
        entries.extend(page["data"])
        cursor = page.get("next_cursor")
        if not cursor:
            return entries


def logged_requests(gateway, account_id: str) -> list[dict]:
    """Every request-log row of the account, through the internal API's pages."""
    rows, cursor = [], None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = gateway.internal("GET", f"/accounts/{account_id}/requests", params=params).json()
        rows.extend(page["data"])
        cursor = page.get("next_cursor")
        if not cursor:
            return rows


def assert_ledger_sums(gateway, account_id: str) -> int:
    """The balance equals the sum of the account's entries; the balance."""
    balance = gateway.balance(account_id)
    assert balance == sum(entry["amount_micro_p"] for entry in ledger_entries(gateway, account_id))
    return balance


def wait_until(condition: Callable[[], bool], timeout: float = 30, interval: float = 0.1) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
