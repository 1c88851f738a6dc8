"""The simulated provider (``api = "simulated"``): answers made up in-process, no network.

It serves demo mode (``SAMALINK_DEMO=1``, where every catalogue provider is replaced by
it) and any providers file that names it. The gateway talks to it as to any upstream:
``wire_provider`` gives a request an OpenAI-wire provider (chat completions, embeddings)
or, for Messages, an Anthropic-wire one, whose ``base_url`` is ``simulated://<name>``;
``send`` hands such URLs to ``answer`` here instead of the network. Every translated
endpoint therefore works through it exactly as it would through a real upstream.

What it answers is plausible and deterministic: text that says it is simulated, streamed
at ``Pace``; a tool call when tools are offered and the last turn is not a tool's result;
usage counted with the gateway's tokenizer, where a prompt whose leading messages were
seen before reports them as cached (``PromptCache``). Every answer carries the header
``x-samalink-simulated: true``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import struct
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

import orjson

from ...catalog import Catalog, Provider
from .. import tokens

API = "simulated"
SCHEME = "simulated://"
HEADER = "x-samalink-simulated"
# What the gateway sends as the provider key: the simulated provider needs none.
NO_KEY = "simulated"
NOTICE = "(Simulated answer: SAMALink demo mode, no model was called.)"
EMBEDDING_DIMENSIONS = 256

_SENTENCES = (
    "In a real deployment this request would have gone to the model's provider.",
    "The gateway metered this answer exactly as it meters a real one.",
    "Its tokens were counted, priced from the catalogue and charged to your balance.",
    "The request log and the usage charts show this call like any other.",
    "Streaming, tool calls and prompt caching behave as they do upstream.",
    "Set a provider's API key and leave demo mode to get real answers.",
    "Repeat the same prompt to see cached input tokens billed at the cache price.",
    "Both the OpenAI and the Anthropic wire formats are served.",
)


@dataclass(frozen=True)
class Pace:
    """How fast simulated streams arrive: a wait before the first content, then tokens per second.

    ``tokens_per_second`` 0 means as fast as possible (tests).
    """

    first_token_seconds: float = 0.0
    tokens_per_second: float = 0.0

    async def wait(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)

    def for_tokens(self, count: int) -> float:
        """Seconds ``count`` tokens take to arrive."""
        return count / self.tokens_per_second if self.tokens_per_second > 0 else 0.0


_pace = Pace()


def configure(pace: Pace) -> None:
    """Set the pace of every simulated stream in this process (called once at start)."""
    global _pace
    _pace = pace


def is_simulated(url: str) -> bool:
    """True for a URL the simulated provider answers."""
    return url.startswith(SCHEME)


def wire_provider(provider: Provider, messages: bool) -> Provider:
    """The provider a request talks to: Anthropic's wire for Messages, OpenAI's otherwise."""
    return replace(provider, api="anthropic" if messages else "openai", base_url=SCHEME + provider.name)


def simulate_catalog(catalog: Catalog) -> Catalog:
    """The same catalogue with every provider served by the simulated provider (demo mode)."""
    providers = {name: replace(p, api=API, base_url=SCHEME + name, api_key_env="")
                 for name, p in catalog.providers.items()}
    return Catalog(providers=providers, models=catalog.models, aliases=catalog.aliases)


# --------------------------------------------------------------------------
# The response object ``send`` returns, shaped like aiohttp's
# --------------------------------------------------------------------------


class _Content:
    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks

    def iter_any(self) -> AsyncIterator[bytes]:
        return self._chunks


class SimulatedResponse:
    """What the gateway reads from an upstream: status, headers, ``read`` or ``content.iter_any``."""

    status = 200

    def __init__(self, chunks: AsyncIterator[bytes], content_type: str) -> None:
        self.headers = {"Content-Type": content_type, HEADER: "true"}
        self.content = _Content(chunks)

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.content.iter_any()])

    def release(self) -> None:
        """Nothing to give back: no connection was taken."""


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def answer(url: str, payload: bytes) -> SimulatedResponse:
    """The simulated upstream's answer to a request for ``url`` (as ``send`` would return it)."""
    body = orjson.loads(payload)
    path = url[len(SCHEME):].partition("/")[2]
    stream = bool(body.get("stream"))
    if path.endswith("messages/count_tokens"):
        return SimulatedResponse(_once(orjson.dumps({"input_tokens": tokens.estimate_messages_prompt(body)})),
                                 "application/json")
    if path.endswith("messages"):
        reply = _reply(body, anthropic=True)
        if stream:
            return SimulatedResponse(_messages_stream(body, reply, _pace), "text/event-stream")
        return SimulatedResponse(_once(orjson.dumps(_messages_body(body, reply))), "application/json")
    if path.endswith("embeddings"):
        return SimulatedResponse(_once(orjson.dumps(embeddings_body(body))), "application/json")
    replies = [_reply(body, anthropic=False, choice=i) for i in range(max(1, int(body.get("n") or 1)))]
    if stream:
        return SimulatedResponse(_chat_stream(body, replies, _pace), "text/event-stream")
    return SimulatedResponse(_once(orjson.dumps(_chat_body(body, replies))), "application/json")


# --------------------------------------------------------------------------
# What is said: text, tool calls, usage
# --------------------------------------------------------------------------


@dataclass
class Reply:
    """One simulated answer: its text pieces (each about a token or two), tool call and usage."""

    pieces: list[str]
    tool: tuple[str, dict] | None
    finish: str  # "stop", "length" or "tool"
    prompt_tokens: int
    cached_tokens: int
    output_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.pieces)


class PromptCache:
    """Which prompt prefixes were seen lately, per model: the leading messages a provider would cache.

    A request's cached tokens are the tokens of its longest prefix of whole messages (with
    the same model, system prompt and tools) seen in an earlier request, so a repeated
    prompt, or a conversation that grows turn by turn, reads from the cache.
    """

    def __init__(self, size: int = 20_000) -> None:
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._size = size

    def cached_tokens(self, context: object, messages: list, measure: Callable[[list], int]) -> int:
        """``measure`` of the longest seen prefix of ``messages``; every prefix is remembered for later."""
        digest = hashlib.sha256(orjson.dumps(context, option=orjson.OPT_SORT_KEYS))
        seen = 0
        for index, message in enumerate(messages, start=1):
            digest.update(orjson.dumps(message, option=orjson.OPT_SORT_KEYS))
            key = digest.digest()
            if seen == index - 1 and key in self._seen:
                seen = index
                self._seen.move_to_end(key)
            else:
                self._seen[key] = None
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)
        return measure(messages[:seen]) if seen else 0


_cache = PromptCache()


def _last_user_text(body: dict) -> str:
    for message in reversed(body.get("messages") or []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(part.get("text") or "" for part in content
                            if isinstance(part, dict) and part.get("type") == "text")
    return ""


def _tool_result_last(body: dict) -> bool:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    if not messages:
        return False
    last = messages[-1]
    if last.get("role") == "tool":
        return True
    content = last.get("content")
    return isinstance(content, list) and any(isinstance(p, dict) and p.get("type") == "tool_result" for p in content)


def _chosen_tool(body: dict, anthropic: bool) -> tuple[str, dict] | None:
    """The (name, input schema) of the tool to call, or None when no tool should be called."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    if not tools or _tool_result_last(body):
        return None
    choice = body.get("tool_choice")
    if anthropic:
        named = [(t.get("name"), t.get("input_schema") or {}) for t in tools if t.get("name")]
        kind = choice.get("type") if isinstance(choice, dict) else "auto"
        wanted = choice.get("name") if isinstance(choice, dict) and kind == "tool" else None
    else:
        named = [((t.get("function") or {}).get("name"), (t.get("function") or {}).get("parameters") or {})
                 for t in tools if (t.get("function") or {}).get("name")]
        kind = choice if isinstance(choice, str) else "function" if isinstance(choice, dict) else "auto"
        wanted = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
    if kind == "none" or not named:
        return None
    for name, schema in named:
        if name == wanted:
            return name, schema
    return named[0]


def _example(schema: object) -> object:
    """A plausible value for a JSON schema: its first enum value, or a simple value of its type."""
    if not isinstance(schema, dict):
        return "simulated"
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = [name for name in schema.get("required") or [] if name in properties] or list(properties)
        return {name: _example(properties[name]) for name in required}
    return {"integer": 1, "number": 1.5, "boolean": True, "array": [], "null": None}.get(kind, "simulated")


def _sentences(seed: bytes, question: str) -> str:
    start = seed[0] % len(_SENTENCES)
    count = 2 + seed[1] % 4
    chosen = [_SENTENCES[(start + i) % len(_SENTENCES)] for i in range(count)]
    asked = " ".join(question.split())[:120]
    opening = f'You asked: "{asked}".' if asked else "You sent a request without text."
    return " ".join([NOTICE, opening, *chosen])


def _pieces(text: str, limit: int) -> tuple[list[str], int, bool]:
    """``text`` as stream pieces (words with their space), cut at ``limit`` tokens; (pieces, tokens, cut)."""
    pieces: list[str] = []
    used = 0
    for index, word in enumerate(text.split(" ")):
        piece = word if index == 0 else " " + word
        count = tokens.count_text(piece)
        if used + count > limit:
            return pieces, used, True
        pieces.append(piece)
        used += count
    return pieces, used, False


def _reply(body: dict, anthropic: bool, choice: int = 0) -> Reply:
    model = str(body.get("model") or "")
    messages = list(body.get("messages") or [])
    context = {"model": model, "tools": body.get("tools"), "system": body.get("system")}
    if anthropic:
        prompt = tokens.estimate_messages_prompt(body)
        measure = lambda prefix: tokens.estimate_messages_prompt(dict(body, messages=prefix))  # noqa: E731
        limit = body.get("max_tokens")
    else:
        prompt = tokens.estimate_chat_prompt(body)
        measure = lambda prefix: tokens.estimate_chat_prompt(dict(body, messages=prefix))  # noqa: E731
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
    limit = limit if isinstance(limit, int) and limit > 0 else 4096
    items = [context, *messages]
    cached = min(prompt, _cache.cached_tokens(context, messages, measure)) if choice == 0 else 0
    seed = hashlib.sha256(orjson.dumps(items, option=orjson.OPT_SORT_KEYS) + bytes([choice % 256])).digest()
    tool = _chosen_tool(body, anthropic)
    question = _last_user_text(body)
    if tool is not None:
        text = f"{NOTICE} Calling {tool[0]}."
    elif _tool_result_last(body):
        text = f"{NOTICE} The tool answered; in a real deployment the model would now use its result."
    else:
        text = _sentences(seed, question)
    pieces, used, cut = _pieces(text, limit)
    call = None
    if tool is not None and not cut:
        call = (tool[0], _example(tool[1]) or {})
        if not isinstance(call[1], dict):
            call = (tool[0], {"value": call[1]})
        used += tokens.count_text(tool[0]) + tokens.count_text(orjson.dumps(call[1]).decode())
    finish = "length" if cut else "tool" if call else "stop"
    return Reply(pieces, call, finish, prompt, cached, used)


def _call_id(prefix: str, reply: Reply) -> str:
    return prefix + hashlib.sha256(reply.text.encode()).hexdigest()[:24]


# --------------------------------------------------------------------------
# OpenAI wire: chat completions and embeddings
# --------------------------------------------------------------------------

_OPENAI_FINISH = {"stop": "stop", "length": "length", "tool": "tool_calls"}


def _openai_usage(replies: list[Reply]) -> dict:
    prompt = replies[0].prompt_tokens
    output = sum(r.output_tokens for r in replies)
    return {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output,
            "prompt_tokens_details": {"cached_tokens": replies[0].cached_tokens}}


def _tool_call(reply: Reply) -> dict:
    name, arguments = reply.tool
    return {"id": _call_id("call_", reply), "type": "function",
            "function": {"name": name, "arguments": orjson.dumps(arguments).decode()}}


def _chat_body(body: dict, replies: list[Reply]) -> dict:
    choices = []
    for index, reply in enumerate(replies):
        message: dict = {"role": "assistant", "content": reply.text}
        if reply.tool:
            message["tool_calls"] = [_tool_call(reply)]
        choices.append({"index": index, "message": message, "finish_reason": _OPENAI_FINISH[reply.finish]})
    return {"id": _call_id("chatcmpl-sim-", replies[0]), "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model"), "choices": choices, "usage": _openai_usage(replies)}


async def _chat_stream(body: dict, replies: list[Reply], pace: Pace) -> AsyncIterator[bytes]:
    head = {"id": _call_id("chatcmpl-sim-", replies[0]), "object": "chat.completion.chunk",
            "created": int(time.time()), "model": body.get("model")}

    def chunk(index: int, delta: dict, finish: str | None = None) -> bytes:
        choice = {"index": index, "delta": delta, "finish_reason": finish}
        return b"data: " + orjson.dumps({**head, "choices": [choice]}) + b"\n\n"

    # Like real providers: the role first, the content after the model's thinking time.
    yield b"".join(chunk(i, {"role": "assistant", "content": ""}) for i in range(len(replies)))
    await pace.wait(pace.first_token_seconds)
    for index, reply in enumerate(replies):
        for piece in reply.pieces:
            yield chunk(index, {"content": piece})
            await pace.wait(pace.for_tokens(tokens.count_text(piece)))
        if reply.tool:
            call = _tool_call(reply)
            arguments = call["function"]["arguments"]
            yield chunk(index, {"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                                "function": {"name": call["function"]["name"], "arguments": ""}}]})
            for start in range(0, len(arguments), 16):
                yield chunk(index, {"tool_calls": [{"index": 0, "function": {"arguments": arguments[start:start + 16]}}]})
        yield chunk(index, {}, _OPENAI_FINISH[reply.finish])
    if (body.get("stream_options") or {}).get("include_usage"):
        yield b"data: " + orjson.dumps({**head, "choices": [], "usage": _openai_usage(replies)}) + b"\n\n"
    yield b"data: [DONE]\n\n"


def _vector(text: str, dimensions: int) -> list[float]:
    """A unit vector derived from ``text`` alone: the same text always embeds the same."""
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        block = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((byte - 127.5) / 127.5 for byte in block)
        counter += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def embeddings_body(body: dict) -> dict:
    """An embeddings answer: one deterministic vector per input, base64 when the client asks."""
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)) else raw
    dimensions = body.get("dimensions")
    dimensions = dimensions if isinstance(dimensions, int) and 0 < dimensions <= 4096 else EMBEDDING_DIMENSIONS
    data = []
    for index, item in enumerate(inputs or []):
        vector = _vector(orjson.dumps(item).decode(), dimensions)
        if body.get("encoding_format") == "base64":
            encoded: object = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        else:
            encoded = vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    prompt = tokens.estimate_embedding_input(raw)
    return {"object": "list", "data": data, "model": body.get("model"),
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}


# --------------------------------------------------------------------------
# Anthropic wire: Messages
# --------------------------------------------------------------------------

_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "tool": "tool_use"}


def _anthropic_usage(reply: Reply, output: int) -> dict:
    # Anthropic's input_tokens leaves out what was read from the cache.
    return {"input_tokens": reply.prompt_tokens - reply.cached_tokens, "output_tokens": output,
            "cache_read_input_tokens": reply.cached_tokens, "cache_creation_input_tokens": 0}


def _messages_body(body: dict, reply: Reply) -> dict:
    content: list[dict] = [{"type": "text", "text": reply.text}]
    if reply.tool:
        content.append({"type": "tool_use", "id": _call_id("toolu_", reply), "name": reply.tool[0],
                        "input": reply.tool[1]})
    return {"id": _call_id("msg_sim_", reply), "type": "message", "role": "assistant", "model": body.get("model"),
            "content": content, "stop_reason": _ANTHROPIC_STOP[reply.finish], "stop_sequence": None,
            "usage": _anthropic_usage(reply, reply.output_tokens)}


def _event(name: str, data: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"


async def _messages_stream(body: dict, reply: Reply, pace: Pace) -> AsyncIterator[bytes]:
    message = {**_messages_body(body, reply), "content": [], "stop_reason": None,
               "usage": _anthropic_usage(reply, 1)}
    yield _event("message_start", {"message": message}) + _event("ping", {})
    await pace.wait(pace.first_token_seconds)
    yield _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    for piece in reply.pieces:
        yield _event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}})
        await pace.wait(pace.for_tokens(tokens.count_text(piece)))
    yield _event("content_block_stop", {"index": 0})
    if reply.tool:
        block = {"type": "tool_use", "id": _call_id("toolu_", reply), "name": reply.tool[0], "input": {}}
        yield _event("content_block_start", {"index": 1, "content_block": block})
        arguments = orjson.dumps(reply.tool[1]).decode()
        for start in range(0, len(arguments), 16):
            yield _event("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta",
                                                                        "partial_json": arguments[start:start + 16]}})
        yield _event("content_block_stop", {"index": 1})
    yield _event("message_delta", {"delta": {"stop_reason": _ANTHROPIC_STOP[reply.finish], "stop_sequence": None},
                                   "usage": {"output_tokens": reply.output_tokens}})
    yield _event("message_stop", {})
