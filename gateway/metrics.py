"""The gateway's Prometheus metrics, and the ``/metrics`` text every process's numbers make up.

Only plain counters, histograms and gauges with a ``multiprocess_mode``: with several
workers (``GATEWAY_WORKERS`` > 1) prometheus-client's multi-process mode sums them from
the files each worker writes under ``PROMETHEUS_MULTIPROC_DIR`` (set by ``serve`` before
the workers start). Labels come from the catalogue and fixed lists only, never from
what a client sent, so their number stays bounded.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
FLUSH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Breaker states as numbers: a gauge holds one value.
BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2, "off": 3}
TOKEN_KINDS = ("input", "output", "cache_read", "cache_write", "reasoning")
UNKNOWN = "unknown"

REQUESTS = Counter("samalink_requests_total", "Public API requests answered, by model, endpoint, status and channel.",
                   ["model", "endpoint", "status", "channel"])
LATENCY = Histogram("samalink_request_duration_seconds", "Time from a request's arrival to its last byte.",
                    ["model", "endpoint"], buckets=LATENCY_BUCKETS)
TTFT = Histogram("samalink_time_to_first_token_seconds", "Time from a streamed request's arrival to its first content.",
                 ["model", "endpoint"], buckets=LATENCY_BUCKETS)
TOKENS = Counter("samalink_tokens_total", "Tokens charged, by model and kind.", ["model", "kind"])
CHARGED = Counter("samalink_charged_micro_p_total", "What customers were charged, micro-P.", ["model"])
RESERVED = Gauge("samalink_reservations_held_micro_p", "Money set aside for requests in flight, micro-P.",
                 multiprocess_mode="livesum")
QUEUE_DEPTH = Gauge("samalink_batch_queue_depth", "Settled requests not yet committed.", multiprocess_mode="livesum")
FLUSH_SECONDS = Histogram("samalink_batch_flush_seconds", "Duration of the batch writer's transactions.",
                          buckets=FLUSH_BUCKETS)
BACKLOG_WAITS = Counter("samalink_batch_backlog_waits_total",
                        "Requests that waited for the batch writer to catch up (GATEWAY_WRITER_BACKLOG).")
FLUSH_FAILURES = Counter("samalink_batch_flush_failures_total", "Batch writer flushes that failed and will be retried.")
BREAKER_STATE = Gauge("samalink_channel_breaker_state",
                      "Each channel's breaker as this process sees it: 0 closed, 1 half-open, 2 open, 3 switched off.",
                      ["channel"], multiprocess_mode="max")


def observe_request(model: str, endpoint: str, status: int, channel: str, seconds: float,
                    ttft_seconds: float | None, tokens: dict[str, int], charged_micro_p: int) -> None:
    """Count one answered request. ``model`` is empty when the client's id named no model."""
    model = model or UNKNOWN
    REQUESTS.labels(model, endpoint, str(status), channel or UNKNOWN).inc()
    LATENCY.labels(model, endpoint).observe(seconds)
    if ttft_seconds is not None:
        TTFT.labels(model, endpoint).observe(ttft_seconds)
    for kind, count in tokens.items():
        if count:
            TOKENS.labels(model, kind).inc(count)
    if charged_micro_p:
        CHARGED.labels(model).inc(charged_micro_p)


def set_breaker(channel: str, state: str) -> None:
    """Show ``channel``'s breaker state."""
    BREAKER_STATE.labels(channel).set(BREAKER_VALUES[state])


def exposition() -> tuple[bytes, str]:
    """The metrics text and its content type: this process's, or every worker's in multi-process mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """Drop a finished worker's live gauges (multi-process mode only)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
