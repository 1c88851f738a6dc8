"""CPU per relayed SSE event of the gateway's own relay code, in-process, without sockets.

    python bench/relay_cpu.py [--events 200] [--streams 2000] [--per-read 1]

Feeds streams shaped like bench/fake_upstream.py's (a role chunk, ``--events`` content
chunks, a finish chunk, a usage chunk and ``[DONE]``; each read holding ``--per-read``
events) through the splitter and relay the gateway picks for each pair of formats, and
divides the process CPU time (``time.process_time``) by the events. "per event" is the
loop as it was (every event split out and handed to ``Relay.event``); "block" is
``SSESplitter.feed_block`` + ``Relay.block``, which same-format relays answer without
taking a run of plain events apart. The socket reads and writes around this code are
not included: ``bench/streams.py`` measures those, here only the relay's share.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.accounting.pricing import TokenUsage  # noqa: E402
from gateway.proxy.sse import SSESplitter, is_content_event, events_of  # noqa: E402
from gateway.proxy.translate.relays import (  # noqa: E402
    ChatPassthrough,
    ChatToCompletionRelay,
    ChatToMessagesRelay,
    MessagesPassthrough,
    MessagesToChatRelay,
    model_renames,
)

UPSTREAM_MODEL = "deepseek-v3.2-upstream"
PUBLIC_MODEL = "deepseek-v3.2"


def chat_stream(events: int) -> list[bytes]:
    """An OpenAI chat stream's events, as the fake upstream sends them."""
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1764072000, "model": UPSTREAM_MODEL}
    out = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    out += [{**base, "choices": [{"index": 0, "delta": {"content": "Hello there"}, "finish_reason": None}]}] * events
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    out.append({**base, "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 2 * events,
                                                  "total_tokens": 20 + 2 * events}})
    return [b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in out] + [b"data: [DONE]\n\n"]


def messages_stream(events: int) -> list[bytes]:
    """An Anthropic Messages stream's events."""
    def sse(event: dict) -> bytes:
        return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"

    out = [sse({"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": UPSTREAM_MODEL, "content": [],
        "stop_reason": None, "usage": {"input_tokens": 20, "output_tokens": 1}}}),
        sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})]
    out += [sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta",
                                                                       "text": "Hello there"}})] * events
    out += [sse({"type": "content_block_stop", "index": 0}),
            sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2 * events}}),
            sse({"type": "message_stop"})]
    return out


def charge(usage: TokenUsage | None) -> tuple[TokenUsage, int]:
    return usage or TokenUsage(input_tokens=20, output_tokens=1), 1234


RELAYS = {
    "chat → chat (same format)": (chat_stream, lambda: ChatPassthrough(
        "fake", True, model_renames(UPSTREAM_MODEL, PUBLIC_MODEL), PUBLIC_MODEL)),
    "messages → messages (same format)": (messages_stream, lambda: MessagesPassthrough(
        "fake", model_renames(UPSTREAM_MODEL, PUBLIC_MODEL))),
    "chat upstream → messages client": (chat_stream, lambda: ChatToMessagesRelay("fake", PUBLIC_MODEL, 20)),
    "chat upstream → completions client": (chat_stream, lambda: ChatToCompletionRelay("fake", PUBLIC_MODEL, True)),
    "messages upstream → chat client": (messages_stream, lambda: MessagesToChatRelay(
        "fake", PUBLIC_MODEL, True, completion=False)),
}


def run(stream: list[bytes], make_relay, streams: int, per_read: int, block: bool) -> float:
    """CPU µs per event for ``streams`` streams through fresh relays."""
    reads = [b"".join(stream[i:i + per_read]) for i in range(0, len(stream), per_read)]
    start = time.process_time()
    for _ in range(streams):
        relay = make_relay()
        relay.charge = charge
        splitter = SSESplitter()
        ttft = None
        for chunk in reads:
            if block:
                data_block, parts = splitter.feed_block(chunk)
                if ttft is None and any(is_content_event(raw) for raw in events_of(parts)):
                    ttft = 1
                out = relay.block(data_block, parts)
            else:
                events = splitter.feed(chunk)
                if ttft is None and any(is_content_event(raw) for raw in events):
                    ttft = 1
                out = b"".join([relay.event(raw) for raw in events])
            del out
        relay.finish()
    return (time.process_time() - start) / (streams * len(stream)) * 1e6


def main(argv: list[str] | None = None) -> None:
    """Command line: print a Markdown table of CPU µs per event, per event and per block."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200, help="content events per stream")
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--per-read", type=int, default=1, help="events arriving together in one read")
    parser.add_argument("--repeat", type=int, default=3, help="keep the least of this many runs")
    args = parser.parse_args(argv)
    print(f"{args.streams:,} streams × {args.events + 4} events, {args.per_read} per read; least of {args.repeat}")
    print("\n| relay | per event µs | block µs |\n|---|---:|---:|")
    for name, (make_stream, make_relay) in RELAYS.items():
        stream = make_stream(args.events)
        figures = [min(run(stream, make_relay, args.streams, args.per_read, block) for _ in range(args.repeat))
                   for block in (False, True)]
        print(f"| {name} | {figures[0]:.2f} | {figures[1]:.2f} |")


if __name__ == "__main__":
    main()
