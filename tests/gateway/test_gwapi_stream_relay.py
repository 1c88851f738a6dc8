"""Same-format stream relay: whole runs of plain events pass through as the upstream sent them.

``Relay.block`` (what the gateway calls per upstream read) must give the client exactly
the bytes that relaying the same events one by one gives, wherever the upstream's reads
happen to split the stream, and the same usage, completion and errors.
"""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.accounting.pricing import TokenUsage
from gateway.errors import ApiError
from gateway.proxy import tokens
from gateway.proxy.sse import SSESplitter
from gateway.proxy.translate.relays import ChatPassthrough, ChatToMessagesRelay, model_renames

UPSTREAM = "deepseek-chat"
PUBLIC = "deepseek-v3.2"
RENAMES = model_renames(UPSTREAM, PUBLIC)


def sse(chunk: dict) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def text(content: str, **extra) -> dict:
    return {"id": "c1", "object": "chat.completion.chunk", "model": UPSTREAM,
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}], **extra}


USAGE = {"prompt_tokens": 11, "completion_tokens": 6, "total_tokens": 17}
EVENTS = {
    "text": sse(text("Hello there")),
    "text with null usage": sse(text("more words", usage=None)),
    "spaced json": b'data: {"id": "c1", "model": "' + UPSTREAM.encode() + b'", "choices": [{"index": 0, '
                   b'"delta": {"content": "spaced"}}], "usage": null}\n\n',
    "no space after colon": b"data:" + orjson.dumps(text("tight")) + b"\n\n",
    "text naming [DONE] and errors": sse(text('say [DONE] or \\"error\\"')),
    "role": sse({"id": "c1", "model": UPSTREAM, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}),
    "usage": sse({"id": "c1", "model": UPSTREAM, "choices": [], "usage": USAGE}),
    "usage in the last choice": sse({"id": "c1", "model": UPSTREAM, "choices": [
        {"index": 0, "delta": {}, "finish_reason": "stop", "usage": USAGE}]}),
    "comment": b": keep-alive\n\n",
    "named event": b"event: chunk\n" + sse(text("named")),
    "id line": b"id: 7\n" + sse(text("with id")),
    "extra blank line": b"\n\n",
    "error": sse({"error": {"message": "overloaded", "type": "server_error"}}),
    "malformed": b'data: {"choices": [\n\n',
    "not json": b"data: <html>\n\n",
    "done": b"data: [DONE]\n\n",
}


def charge(usage: TokenUsage | None) -> tuple[TokenUsage, int]:
    return usage or TokenUsage(input_tokens=11, output_tokens=1), 2500


def relay_stream(relay, reads: list[bytes], *, by_block: bool) -> tuple[bytes, str | None]:
    """What the client receives (and the error that ended it, if any), read by read."""
    relay.charge = charge
    splitter = SSESplitter()
    out = []
    try:
        for chunk in reads:
            if by_block:
                block, parts = splitter.feed_block(chunk)
                out.append(relay.block(block, parts))
            else:
                out.append(b"".join([relay.event(raw) for raw in splitter.feed(chunk)]))
        leftover = splitter.rest()
        if leftover:
            out.append(relay.event(leftover + b"\n\n"))
        out.append(relay.finish())
    except ApiError as error:
        return b"".join(out), f"{error.status} {error}"
    return b"".join(out), None


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


stream_events = st.lists(st.sampled_from(sorted(EVENTS)), min_size=1, max_size=10)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(names=stream_events, crlf=st.booleans(), wants_usage=st.booleans(),
       cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=12))
def test_a_block_relays_exactly_what_the_events_one_by_one_would(names, crlf, wants_usage, cuts):
    data = b"".join(EVENTS[name] for name in names)
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    reads = split(data, cuts)
    by_event = ChatPassthrough("deepseek", wants_usage, RENAMES, PUBLIC)
    by_block = ChatPassthrough("deepseek", wants_usage, RENAMES, PUBLIC)
    assert relay_stream(by_block, reads, by_block=True) == relay_stream(by_event, reads, by_block=False)
    assert by_block.usage.reported_usage == by_event.usage.reported_usage
    assert by_block.complete == by_event.complete
    assert by_block.estimated_usage(11) == by_event.estimated_usage(11)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(contents=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=8),
       cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=12))
def test_plain_events_reach_the_client_byte_for_byte_wherever_the_reads_split(contents, cuts):
    upstream = b"".join(sse(text(content)) for content in contents) + EVENTS["usage"] + EVENTS["done"]
    relay = ChatPassthrough("deepseek", True, RENAMES, PUBLIC)
    received, error = relay_stream(relay, split(upstream, cuts), by_block=True)
    assert error is None
    # The content chunks as sent, the model shown by its public id; the usage chunk gains its cost.
    content_part = b"".join(sse(text(content)) for content in contents)
    expected = content_part.replace(b'"model":"' + UPSTREAM.encode() + b'"', b'"model":"' + PUBLIC.encode() + b'"')
    assert received.startswith(expected)
    usage_chunk = orjson.loads(received[len(expected):].split(b"\n\n")[0][len(b"data: "):])
    assert usage_chunk["usage"]["completion_tokens"] == 6 and usage_chunk["usage"]["cost"] == 0.0025
    assert received.endswith(b"\n\ndata: [DONE]\n\n")


def test_a_stream_without_usage_is_estimated_from_the_text_relayed_in_blocks():
    relay = ChatPassthrough("deepseek", True, RENAMES, PUBLIC)
    upstream = sse(text("one two three")) + sse(text(" four five")) + EVENTS["done"]
    received, error = relay_stream(relay, [upstream], by_block=True)
    assert error is None
    estimate = relay.estimated_usage(11)
    assert estimate.output_tokens == tokens.count_text("one two three four five")
    # The client asked for usage and the upstream sent none: the estimate comes before [DONE].
    last = received.split(b"\n\n")[-3]
    assert orjson.loads(last[len(b"data: "):])["usage"]["cost"] == 0.0025


def test_an_upstream_error_inside_a_run_of_plain_events_still_ends_the_stream():
    relay = ChatPassthrough("deepseek", False, RENAMES, PUBLIC)
    upstream = sse(text("partial")) + EVENTS["error"] + sse(text("never seen"))
    received, error = relay_stream(relay, [sse(text("first")), upstream], by_block=True)
    assert error is not None and "overloaded" in error
    assert b"first" in received and b"never seen" not in received


def test_a_translating_relay_gives_the_same_bytes_per_block_as_per_event():
    upstream = (EVENTS["role"] + sse(text("Hello")) + sse(text(" world")) + EVENTS["usage"] + EVENTS["done"])
    for cuts in ([], [5, 60, 61, 200], list(range(0, len(upstream), 7))):
        reads = split(upstream, cuts)
        by_block = relay_stream(ChatToMessagesRelay("deepseek", PUBLIC, 11), reads, by_block=True)
        by_event = relay_stream(ChatToMessagesRelay("deepseek", PUBLIC, 11), reads, by_block=False)
        assert by_block == by_event
        assert b"event: message_stop" in by_block[0]


def _relay_makers() -> list:
    from gateway.proxy.translate import responses_api_stream as rs
    from gateway.proxy.translate.relays import ChatToCompletionRelay, MessagesPassthrough, MessagesToChatRelay

    def events():
        return rs.ResponseEvents(PUBLIC, {"model": PUBLIC, "input": "hi"}, [], False)

    return [
        lambda: ChatPassthrough("deepseek", True, RENAMES, PUBLIC),
        lambda: MessagesPassthrough("anthropic", RENAMES),
        lambda: MessagesToChatRelay("anthropic", PUBLIC, True, completion=False),
        lambda: MessagesToChatRelay("anthropic", PUBLIC, True, completion=True),
        lambda: ChatToMessagesRelay("deepseek", PUBLIC, 11),
        lambda: ChatToCompletionRelay("deepseek", PUBLIC, True),
        lambda: rs.ResponsesPassthrough("openai", RENAMES),
        lambda: rs.ChatToResponsesRelay("deepseek", events()),
        lambda: rs.MessagesToResponsesRelay("anthropic", events()),
    ]


def test_a_finished_streams_relay_is_freed_at_once_not_left_for_the_cycle_collector():
    import gc
    import weakref
    from types import SimpleNamespace

    from gateway.proxy.forward import stream_charge

    gc.collect()
    gc.disable()
    try:
        for make in _relay_makers():
            relay = make()
            relay.charge = stream_charge(SimpleNamespace(), SimpleNamespace(estimated_input=11), relay)
            gone = weakref.ref(relay)
            name = type(relay).__name__
            del relay
            assert gone() is None, name
    finally:
        gc.enable()


def test_a_keep_alive_comment_from_the_upstream_is_no_error_for_any_relay():
    """Providers send `: keep-alive` (or `: OPENROUTER PROCESSING`) comments while the model
    thinks: a relay passes them on or drops them, it never ends the stream with an error."""
    for make in _relay_makers():
        relay = make()
        for comment in (b": keep-alive\n\n", b": PROCESSING\n: still\n\n"):
            out = relay.event(comment)
            assert out in (b"", comment), (type(relay).__name__, out)
        assert not relay.complete
