"""Jinja filters: money, counts and dates in the signed-in user's time zone."""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Flask
from flask_login import current_user

from . import money
from .timeutil import as_aware, parse_iso, zone


def _user_zone():
    tz = current_user.tz if getattr(current_user, "is_authenticated", False) else "UTC"
    return zone(tz)


def _to_datetime(value) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return parse_iso(value)
    return as_aware(value)


def local_time(value, fmt: str = "%Y-%m-%d %H:%M:%S", with_zone: bool = True) -> str:
    """An ISO string or datetime shown in the user's zone, with the zone's abbreviation."""
    moment = _to_datetime(value)
    if moment is None:
        return "—"
    local = moment.astimezone(_user_zone())
    return f"{local.strftime(fmt)} {local.tzname()}" if with_zone else local.strftime(fmt)


def local_date(value) -> str:
    """Only the date part, in the user's zone."""
    moment = _to_datetime(value)
    return "—" if moment is None else moment.astimezone(_user_zone()).strftime("%Y-%m-%d")


def relative_time(value) -> str:
    """"3 min ago" for recent moments, the local date for older ones, "Never" for none."""
    moment = _to_datetime(value)
    if moment is None:
        return "Never"
    seconds = int((datetime.now(timezone.utc) - moment).total_seconds())
    if seconds < 0:
        return local_time(value, "%Y-%m-%d %H:%M")
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''} ago"
    if seconds < 7 * 86400:
        days = seconds // 86400
        return f"{days} day{'s' if days != 1 else ''} ago"
    return local_date(value)


def token_threshold(tokens: int | None) -> str:
    """A tier's threshold as people write it: 200000 → "200K", 1000000 → "1M", 32768 → "32,768"."""
    if tokens is None:
        return ""
    tokens = int(tokens)
    if tokens and tokens % 1_000_000 == 0:
        return f"{tokens // 1_000_000:,}M"
    if tokens and tokens % 1_000 == 0:
        return f"{tokens // 1_000:,}K"
    return f"{tokens:,}"


# What the request log's error classes of a key's own controls mean (all cost 0 P).
ERROR_CLASS_TITLES = {
    "key_budget_exceeded": "Refused: the key's budget for this period was spent",
    "model_not_allowed": "Refused: the model is not on the key's allow-list",
    "ip_not_allowed": "Refused: the caller's address is not on the key's allow-list",
    "rate_limited": "Refused: over the key's or account's requests or tokens per minute",
    "key_spend_limit_reached": "Refused: the key's lifetime spending limit was reached",
    "insufficient_balance": "Refused: the balance could not cover the request",
}


def error_class_title(error_class: str | None) -> str:
    """A sentence for an error class in the request log (the class itself when not known)."""
    return ERROR_CLASS_TITLES.get(error_class or "", error_class or "")


def register_filters(app: Flask) -> None:
    """Install the filters on the app's Jinja environment."""
    app.jinja_env.filters.update(
        p=money.format_p,
        usd=money.format_usd,
        num=money.format_int,
        price=money.format_price,
        price_usd=money.price_usd,
        localtime=local_time,
        localdate=local_date,
        reltime=relative_time,
        tokens_k=token_threshold,
        error_title=error_class_title,
        p_exact=money.format_p_exact,
    )
