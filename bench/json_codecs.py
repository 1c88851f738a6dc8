"""orjson against msgspec for the JSON bodies the gateway decodes and encodes, µs per body.

    python bench/json_codecs.py [--repeat 7] [--seconds 0.2]

Request bodies are the recorded client requests under ``tests/gateway/fixtures/`` (Claude
Code's ``/v1/messages`` and Codex's ``/v1/responses``, 9–93 KB, the sizes a coding agent
sends); response bodies are the fake upstream's chat completion and embeddings answers and
an Anthropic message with a tool call (no responses are recorded). For each body: decode
bytes to Python objects (``orjson.loads`` against ``msgspec.json.decode``, untyped, i.e. the
same dicts and lists the gateway works on) and encode them back (``orjson.dumps`` against a
reused ``msgspec.json.Encoder``). Each figure is the least of ``--repeat`` timed runs of
about ``--seconds`` each, in one process, timed in this process's CPU time (``time.process_time``:
the time spent waiting for a core on a shared machine is not counted); results land in bench/results/json_codecs.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import msgspec
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fake_upstream  # noqa: E402
import harness  # noqa: E402

FIXTURES = harness.REPO_DIR / "tests" / "gateway" / "fixtures"


def bodies() -> list[tuple[str, bytes]]:
    """(name, raw JSON) of every request body in the fixtures and of three response shapes."""
    found = []
    for path in sorted(FIXTURES.glob("*/*.json")):
        body = json.loads(path.read_text())["body"]
        found.append((f"request {path.stem}", orjson.dumps(body)))
    behaviour = fake_upstream.Behaviour()
    chat = fake_upstream.chat_completion({"model": "deepseek-v3.2", "messages": [{"role": "user", "content": "hi"}]},
                                         behaviour)
    found.append(("response chat completion (fake upstream)", orjson.dumps(chat)))
    found.append(("response embeddings, 2 inputs (fake upstream)",
                  orjson.dumps(fake_upstream.embeddings({"input": ["one", "two"]}))))
    message = {"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
               "content": [{"type": "text", "text": "I'll look at the file first. " * 12},
                           {"type": "tool_use", "id": "toolu_01", "name": "Read",
                            "input": {"file_path": "/repo/gateway/proxy/forward.py", "limit": 200}}],
               "stop_reason": "tool_use", "usage": {"input_tokens": 18234, "output_tokens": 96}}
    found.append(("response Anthropic message with a tool call", orjson.dumps(message)))
    return found


def per_call_us(fn, arg, seconds: float, repeat: int) -> float:
    """Least CPU µs per call of ``fn(arg)`` over ``repeat`` runs of about ``seconds`` each."""
    loops = 1
    while True:  # calibrate the loop count to the wanted run length
        started = time.process_time()
        for _ in range(loops):
            fn(arg)
        took = time.process_time() - started
        if took >= seconds / 4:
            break
        loops *= 2
    loops = max(1, int(loops * seconds / took))
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for _ in range(loops):
            fn(arg)
        best = min(best, (time.process_time() - started) / loops)
    return best * 1e6


def main(argv: list[str] | None = None) -> None:
    """Time both codecs on every body and print one Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=0.1)
    args = parser.parse_args(argv)
    harness.warn_if_busy()
    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder()
    rows = []
    for name, raw in bodies():
        value = orjson.loads(raw)
        assert decoder.decode(raw) == value and orjson.loads(encoder.encode(value)) == value
        rows.append({
            "body": name, "bytes": len(raw),
            "orjson_decode_us": per_call_us(orjson.loads, raw, args.seconds, args.repeat),
            "msgspec_decode_us": per_call_us(decoder.decode, raw, args.seconds, args.repeat),
            "orjson_encode_us": per_call_us(orjson.dumps, value, args.seconds, args.repeat),
            "msgspec_encode_us": per_call_us(encoder.encode, value, args.seconds, args.repeat),
        })
    print("| body | bytes | decode orjson µs | decode msgspec µs | encode orjson µs | encode msgspec µs |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['body']} | {row['bytes']:,} | {row['orjson_decode_us']:.1f} | {row['msgspec_decode_us']:.1f} "
              f"| {row['orjson_encode_us']:.1f} | {row['msgspec_encode_us']:.1f} |")
    totals = {k: sum(r[k] for r in rows) for k in rows[0] if k.endswith("_us")}
    print(f"\nsum over the {len(rows)} bodies: " + ", ".join(f"{k} {v:.1f}" for k, v in totals.items()))
    harness.write_result("json_codecs", {"machine": harness.machine_description(), "rows": rows,
                                         "versions": {"orjson": orjson.__version__, "msgspec": msgspec.__version__}})


if __name__ == "__main__":
    main()
