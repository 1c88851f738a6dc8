"""``/metrics`` in Prometheus text on the internal listener (every worker summed), and JSON logs."""

from __future__ import annotations

import json
import time

import pytest
import requests
from channel_upstream import (
    channel_catalog,
    channel_gateway_env,
    charge,
    key_of,
)
from gwapi_helpers import new_customer
from prometheus_client.parser import text_string_to_metric_families

from fixtures.gateway import start_gateway

MODELS = ["metered"]
REQUESTS = 12


@pytest.fixture(scope="module")
def two_workers(channel_upstream, gateway_database_url, tmp_path_factory):
    providers = channel_catalog(tmp_path_factory.mktemp("metrics") / "providers.toml", channel_upstream.url, MODELS)
    env = channel_gateway_env(channel_upstream, gateway_database_url, providers, MODELS)
    # A long cool-down: the failing channel stays open for the whole test, however slow the machine.
    handle = start_gateway({**env, "GATEWAY_WORKERS": "2", "LOG_FORMAT": "json", "GATEWAY_BREAKER_COOLDOWN": "120"})
    yield handle
    handle.stop()


def _samples(gateway) -> dict[tuple[str, tuple], float]:
    answer = requests.get(f"{gateway.internal_url}/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _sum(samples: dict, name: str, **labels) -> float:
    return sum(value for (metric, found), value in samples.items()
               if metric == name and all((k, v) in found for k, v in labels.items()))


def test_metrics_sum_every_worker_and_stay_off_the_public_port(two_workers, channel_upstream):
    channel_upstream.fail("metered-a", "status:503")
    customer = new_customer(two_workers)
    for index in range(REQUESTS):
        answer = requests.post(
            f"{two_workers.url}/v1/chat/completions", headers={"Authorization": f"Bearer {customer.key}"},
            json={"model": "metered", "messages": [{"role": "user", "content": "secret prompt words"}],
                  "stream": index % 2 == 0}, timeout=30)
        assert answer.status_code == 200
        answer.close()
    customer.settled(REQUESTS)
    breaker = ("samalink_channel_breaker_state", (("channel", "metered-a:metered-up-a"),))
    deadline = time.monotonic() + 30
    while True:
        samples = _samples(two_workers)
        served = _sum(samples, "samalink_requests_total", model="metered", channel="metered-b:metered-up-b",
                      status="200", endpoint="/v1/chat/completions")
        if (served == REQUESTS and samples.get(breaker) == 2) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert served == REQUESTS
    assert _sum(samples, "samalink_charged_micro_p_total", model="metered") == REQUESTS * charge()
    assert _sum(samples, "samalink_tokens_total", model="metered", kind="output") > 0
    assert _sum(samples, "samalink_request_duration_seconds_count", model="metered") == REQUESTS
    assert _sum(samples, "samalink_time_to_first_token_seconds_count", model="metered") == REQUESTS // 2
    assert _sum(samples, "samalink_batch_flush_seconds_count") > 0
    assert ("samalink_batch_queue_depth", ()) in samples
    assert ("samalink_reservations_held_micro_p", ()) in samples
    assert ("samalink_batch_flush_failures_total", ()) in samples
    assert samples[("samalink_batch_backlog_waits_total", ())] == 0
    # The failing primary is open (2), whichever worker saw it fail.
    assert samples[breaker] == 2
    assert requests.get(f"{two_workers.url}/metrics", timeout=10).status_code == 404


def test_json_logs_are_one_object_per_line_without_keys_or_prompts(two_workers):
    two_workers.internal("GET", "/health")
    lines = [line for line in two_workers.log_text().splitlines() if line.strip()]
    assert lines
    for line in lines:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(entry)
    text = two_workers.log_text()
    assert key_of("metered-a") not in text and "secret prompt words" not in text
