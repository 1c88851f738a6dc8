"""Upstream faults, streamed and not: timeout, 5xx, a connection cut mid-answer, malformed JSON/SSE.

For each: the client gets a clear error, nothing is charged for output it did not get,
the ledger still sums, and the next ordinary request is served (the gateway recovers by
itself). The status mapping of whole answers is covered in tests/gateway; this adds the
streamed side, the ledger invariant and the recovery.
"""

from __future__ import annotations

import json

import pytest
from fault_common import ONE_P, assert_ledger_sums, chat, logged_requests, wait_until

FAULTS = [("[[hang]]", 504, "upstream_timeout"), ("[[error:500]]", 500, None), ("[[cut]]", 502, None),
          ("[[malformed]]", 502, None)]


def _stream_error(answer) -> dict | None:
    """The error event a broken stream ends with, if any."""
    for line in answer.text.splitlines():
        if line.startswith("data: ") and '"error"' in line:
            return json.loads(line[len("data: "):])["error"]
    return None


@pytest.mark.parametrize("model", ["deepseek-v3.2", "claude-haiku-4.5"])
@pytest.mark.parametrize("phrase, status, error_class", FAULTS, ids=[f[0].strip("[]") for f in FAULTS])
def test_streamed_upstream_faults_end_clearly_cost_nothing_and_the_next_request_works(
        gateway, fake_upstream, model, phrase, status, error_class):
    account_id = gateway.create_account(100 * ONE_P)
    key = gateway.create_key(account_id)["key"]
    answer = chat(gateway.url, key, f"{phrase} stream please", stream=True, model=model)
    if answer.status_code == 200:
        # The stream had started: it must end with an error event, never silently.
        error = _stream_error(answer)
        assert error is not None and error["message"], answer.text[-500:]
        assert "data: [DONE]" not in answer.text
    else:
        assert answer.status_code == status
        assert answer.json()["error"]["message"]
    recovered = chat(gateway.url, key, "all good now", model=model)
    assert recovered.status_code == 200, recovered.text
    assert wait_until(lambda: len(logged_requests(gateway, account_id)) == 2)
    failed, good = sorted(logged_requests(gateway, account_id), key=lambda row: row["status"] == 200)
    assert failed["cost_micro_p"] == 0 and failed["status"] == status and failed["error_class"]
    if error_class:
        assert failed["error_class"] == error_class
    assert good["cost_micro_p"] > 0
    assert assert_ledger_sums(gateway, account_id) == 100 * ONE_P - good["cost_micro_p"]


def test_a_burst_of_upstream_failures_leaves_nothing_reserved(gateway, fake_upstream):
    account_id = gateway.create_account(100 * ONE_P)
    key = gateway.create_key(account_id)["key"]
    for phrase, _, _ in FAULTS[1:]:
        for stream in (False, True):
            chat(gateway.url, key, phrase, stream=stream)
    assert wait_until(lambda: len(logged_requests(gateway, account_id)) == 6)
    assert assert_ledger_sums(gateway, account_id) == 100 * ONE_P
    # Nothing stays set aside once the failures are settled.
    assert wait_until(lambda: gateway.internal("GET", f"/accounts/{account_id}").json()["reserved_micro_p"] == 0,
                      timeout=30)
