"""Shared helpers for the public API tests: a funded customer with SDK clients, and polling."""

from __future__ import annotations

import time
from dataclasses import dataclass

import anthropic
import openai

from fixtures.upstream import COMPLETION_TOKENS, PROMPT_TOKENS

# Prices from the shipped catalogue (micro-P per token).
PRICES = {
    "deepseek-v3.2": (280, 420),
    "claude-haiku-4.5": (800, 4000),
    "gpt-5.2": (1750, 14000),
    "text-embedding-3-small": (20, 0),
}
ONE_P = 1_000_000
MODELS_BY_WIRE = {"openai": "deepseek-v3.2", "anthropic": "claude-haiku-4.5"}


def cost(model: str, input_tokens: int = PROMPT_TOKENS, output_tokens: int = COMPLETION_TOKENS) -> int:
    """What ``model`` charges for these tokens, in micro-P."""
    input_price, output_price = PRICES[model]
    return input_tokens * input_price + output_tokens * output_price


@dataclass
class Customer:
    """An account with one key on the test gateway."""

    gateway: object
    account_id: str
    key: str
    key_id: str

    def openai(self) -> openai.OpenAI:
        """The official OpenAI SDK pointed at the gateway (no retries, so errors show as they are)."""
        return openai.OpenAI(base_url=f"{self.gateway.url}/v1", api_key=self.key, max_retries=0, timeout=30)

    def anthropic(self) -> anthropic.Anthropic:
        """The official Anthropic SDK pointed at the gateway."""
        return anthropic.Anthropic(base_url=self.gateway.url, api_key=self.key, max_retries=0, timeout=30)

    def account(self) -> dict:
        """The account as the internal API shows it."""
        return self.gateway.internal("GET", f"/accounts/{self.account_id}").json()

    def settled(self, requests: int, timeout: float = 20) -> dict:
        """The account once ``requests`` requests have been settled by the batch writer."""
        deadline = time.monotonic() + timeout
        while True:
            account = self.account()
            if account["requests"] >= requests:
                return account
            assert time.monotonic() < deadline, f"only {account['requests']} of {requests} requests settled"
            time.sleep(0.05)

    def log(self) -> list[dict]:
        """The request log, newest first."""
        answer = self.gateway.internal("GET", f"/accounts/{self.account_id}/requests", params={"limit": 200})
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]

    def ledger_sum(self) -> int:
        """The sum of every ledger entry of the account."""
        total = 0
        cursor = None
        while True:
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = self.gateway.internal("GET", f"/accounts/{self.account_id}/ledger", params=params).json()
            total += sum(entry["amount_micro_p"] for entry in page["data"])
            cursor = page.get("next_cursor")
            if not cursor:
                return total


def new_customer(gateway, balance_micro_p: int = 1000 * ONE_P, **key_fields) -> Customer:
    """A fresh account credited with ``balance_micro_p`` and one key."""
    account_id = gateway.create_account(balance_micro_p)
    created = gateway.create_key(account_id, **key_fields)
    return Customer(gateway, account_id, created["key"], created["id"])
