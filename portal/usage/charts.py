"""Chart data for the usage page, built from the gateway's roll-ups (amounts stay integers)."""

from __future__ import annotations

from .ranges import DateRange

# Requests refused before they named a known model are logged with no model: they still
# count as requests, under this label rather than a blank one.
NO_MODEL_LABEL = "refused before a model was named"


def model_label(model: str | None) -> str:
    """The name a model's usage is shown under."""
    return model or NO_MODEL_LABEL


def cost_by_model(by_model: list[dict]) -> dict:
    """Doughnut data: one slice per model, cost in micro-P, biggest first."""
    rows = sorted(by_model, key=lambda r: r.get("cost_micro_p", 0), reverse=True)
    return {
        "labels": [model_label(r["model"]) for r in rows],
        "cost_micro_p": [int(r.get("cost_micro_p", 0)) for r in rows],
    }


def daily_usage(daily: list[dict], date_range: DateRange) -> dict:
    """Stacked bars: per model a series over every day in the range (missing days are zero)."""
    days = [d.isoformat() for d in date_range.days]
    index = {day: i for i, day in enumerate(days)}
    models: dict[str, dict[str, list[int]]] = {}
    for row in daily:
        position = index.get(row.get("date"))
        if position is None:
            continue
        series = models.setdefault(model_label(row["model"]), {
            "cost_micro_p": [0] * len(days), "tokens": [0] * len(days), "requests": [0] * len(days)})
        series["cost_micro_p"][position] += int(row.get("cost_micro_p", 0))
        series["tokens"][position] += int(row.get("input_tokens", 0)) + int(row.get("output_tokens", 0))
        series["requests"][position] += int(row.get("requests", 0))
    return {"days": days, "series": [{"model": m, **values} for m, values in sorted(models.items())]}


def daily_totals(daily: list[dict], date_range: DateRange) -> list[dict]:
    """Per day totals over all models, for the screen-reader table."""
    totals = {d.isoformat(): {"date": d.isoformat(), "requests": 0, "tokens": 0, "cost_micro_p": 0}
              for d in date_range.days}
    for row in daily:
        day = totals.get(row.get("date"))
        if day is None:
            continue
        day["requests"] += int(row.get("requests", 0))
        day["tokens"] += int(row.get("input_tokens", 0)) + int(row.get("output_tokens", 0))
        day["cost_micro_p"] += int(row.get("cost_micro_p", 0))
    return list(totals.values())
