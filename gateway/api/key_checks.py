"""A key's own controls on the public API: where the client may call from, which models
it may call, its budget for the period, and its per-minute rate limits.

Every public endpoint runs these on its shared path (``public._serve`` and the
authentication every endpoint starts with), so an endpoint added later inherits them.
Each refusal is an ``ApiError`` with the code the internal API documents:
``ip_not_allowed`` and ``model_not_allowed`` (403), ``key_budget_exceeded`` and
``member_budget_exceeded`` (402), ``rate_limited`` (429, with ``retry-after`` and OpenAI's ``x-ratelimit-*`` headers).
"""

from __future__ import annotations

import math
from aiohttp import web

from ..accounting.ratelimits import Admission, RateLimit, RateLimited, RateLimiter, WindowState
from ..auth import KeyInfo, MemberBudgetInfo
from ..catalog import Model
from ..errors import ApiError
from ..key_controls import client_address, duration_text, ip_allowed

PERIOD_WORDS = {"day": "daily", "week": "weekly", "month": "monthly"}


def check_client_ip(key: KeyInfo, request: web.Request, trusted_hops: int) -> None:
    """Refuse a key with an IP allow-list called from outside it (403 ``ip_not_allowed``)."""
    if not key.allowed_ips:
        return
    address = client_address(request.remote, request.headers.getall("X-Forwarded-For", []), trusted_hops)
    if not ip_allowed(address, key.allowed_ips):
        shown = address if address and len(address) <= 64 else "this address"
        raise ApiError(403, f"This API key may not be used from {shown}. Add the address to the key's "
                            "IP allow-list in the portal.", code="ip_not_allowed", type="permission_error")


def model_allowed(key: KeyInfo, model: Model) -> bool:
    """Whether the key may call ``model`` (an empty allow-list allows every model)."""
    return not key.allowed_models or model.id in key.allowed_models


def check_model_allowed(key: KeyInfo, model: Model) -> None:
    """Refuse a model outside the key's allow-list (403 ``model_not_allowed``)."""
    if not model_allowed(key, model):
        raise ApiError(403, f"This API key may not call '{model.id}'. Add it to the key's allowed models in "
                            "the portal, or use one of the models GET /v1/models lists for this key.",
                       code="model_not_allowed", param="model", type="permission_error")


def budget_error(key: KeyInfo) -> ApiError:
    """The 402 of a key whose budget for this period is spent, with its reset time."""
    resets = key.budget_resets_at.strftime("%Y-%m-%dT%H:%M:%SZ") if key.budget_resets_at else "the next period"
    budget = (key.budget_micro_p or 0) / 1_000_000
    kind = PERIOD_WORDS.get(key.budget_period or "", "period")
    return ApiError(402, f"This API key's {kind} budget of {budget:,.4f} P has too little left for this request; "
                         f"it resets at {resets}. Raise the budget in the portal or wait for the reset.",
                    code="key_budget_exceeded", type="insufficient_balance")


def member_budget_error(member: MemberBudgetInfo | None) -> ApiError:
    """The 402 of a key whose team member's budget for this period is spent, with its reset
    time: the shape of a key budget's refusal, naming the member's budget."""
    resets = "the next period"
    if member is not None and member.resets_at is not None:
        resets = member.resets_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    budget = (member.budget_micro_p if member is not None else 0) / 1_000_000
    kind = PERIOD_WORDS.get(member.budget_period if member is not None else "", "period")
    return ApiError(402, f"Your team member budget ({kind}, {budget:,.4f} P) has too little left for this "
                         f"request; it resets at {resets}. Ask a team admin to raise the member budget in the "
                         "portal, or wait for the reset.",
                    code="member_budget_exceeded", type="insufficient_balance")


def rate_limits(key: KeyInfo) -> list[RateLimit]:
    """The per-minute limits a request of this key counts against: the key's, then the account's."""
    limits = []
    if key.rpm_limit is not None or key.tpm_limit is not None:
        limits.append(RateLimit(f"key:{key.key_id}", key.rpm_limit, key.tpm_limit))
    if key.account_rpm_limit is not None or key.account_tpm_limit is not None:
        limits.append(RateLimit(f"account:{key.account_id}", key.account_rpm_limit, key.account_tpm_limit))
    return limits


async def admit(limiter: RateLimiter, key: KeyInfo, tokens: int) -> Admission | None:
    """Count the request under the key's and the account's per-minute limits, or refuse it (429)."""
    limits = rate_limits(key)
    if not limits:
        return None
    try:
        admission, _ = await limiter.admit(limits, tokens)
    except RateLimited as exc:
        raise rate_limited_error(exc, key) from None
    return admission


def _headers(kind: str, state: WindowState | None) -> dict[str, str]:
    if state is None:
        return {}
    return {
        f"x-ratelimit-limit-{kind}": str(state.limit),
        f"x-ratelimit-remaining-{kind}": str(state.remaining),
        f"x-ratelimit-reset-{kind}": duration_text(state.reset_seconds),
    }


def rate_limited_error(exc: RateLimited, key: KeyInfo) -> ApiError:
    """The 429 for a refusal, with the headers the official SDKs read."""
    whose = "This API key" if exc.scope.startswith("key:") else "This account"
    wait = max(1, math.ceil(exc.retry_after))
    if exc.too_large:
        limit = exc.tokens.limit if exc.tokens else 0
        message = (f"{whose} may use {limit:,} tokens per minute, and this request alone may use more "
                   "(its prompt plus max_tokens). Lower max_tokens or ask for a higher limit.")
    else:
        state = exc.requests if exc.dimension == "requests" else exc.tokens
        limit = state.limit if state else 0
        message = f"{whose} is limited to {limit:,} {exc.dimension} per minute. Retry after {wait} s."
    headers = {"retry-after": str(wait), **_headers("requests", exc.requests), **_headers("tokens", exc.tokens)}
    return ApiError(429, message, code="rate_limited", type="rate_limit_error", headers=headers)


def settle_admission(limiter: RateLimiter, admission: Admission | None, used_tokens: int) -> None:
    """Correct the tokens admitted from the estimate to what the request used."""
    if admission is not None:
        limiter.settle(admission, used_tokens)

