"""A fake upstream that plays a scripted coding-agent model, for the real agent CLIs.

It serves every provider of the catalogue at ``/<provider>/...`` in that provider's wire
shape: Anthropic Messages (``/v1/messages``, streamed or not, thinking blocks when the
request asks for thinking, cache reads and writes in ``usage``; ``count_tokens``), OpenAI
chat completions (streamed or not; DeepSeek's ``reasoning_content`` and
``prompt_cache_hit_tokens``, everyone else's ``prompt_tokens_details.cached_tokens``) and
OpenAI's Responses API (``/responses``, its named SSE events, reasoning and function-call
items, cached and reasoning token details).

The model it plays is a script read from the conversation, so every answer follows from
the request alone:

- a request whose text holds ``samalink-nonce-<N>``, offering a shell-like tool, with no
  tool result yet, asks to run ``printf 'samalink-tool-%s\\n' <N>`` — the output text
  ``samalink-tool-<N>`` appears nowhere in the command, so seeing it proves the command ran;
- once a tool result is in the conversation, the answer quotes the tool output it found
  there (``The command printed samalink-tool-<N>.``);
- anything else (titles, side questions, a prompt without a nonce) gets a short text.

Every answer reports the same usage (``USAGE``), so a test knows the exact charge.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from gateway.accounting.pricing import TokenUsage

NONCE = re.compile(r"samalink-nonce-([a-z0-9]+)")
TOOL_OUTPUT = re.compile(r"samalink-tool-[a-z0-9]+")
PLAIN_ANSWER = "Hello from the scripted model."
NO_OUTPUT_ANSWER = "The command printed nothing I recognise."
THINKING_TEXT = "The user wants the check run; I will use the shell."
SIGNATURE = "c2FtYWxpbmstZmFrZS1zaWduYXR1cmU="
# The tool names each client gives its shell (Claude Code: Bash; Codex: exec_command today,
# shell or shell_command in other versions, or the built-in local_shell of the Responses API).
SHELL_TOOLS = ("Bash", "shell", "exec_command", "shell_command")
COUNTED_TOKENS = 2345

# The usage every answer reports: fresh input, cache reads, cache writes (Anthropic only:
# OpenAI-wire providers bill no writes), output of which reasoning.
FRESH_INPUT = 400
CACHE_READ = 2000
CACHE_WRITE = 300
OUTPUT = 60
REASONING = 20


def expected_usage(wire: str) -> TokenUsage:
    """What the gateway should read from this fake's usage on a provider of ``wire``."""
    if wire == "anthropic":
        return TokenUsage(input_tokens=FRESH_INPUT, cache_read_tokens=CACHE_READ, cache_write_tokens=CACHE_WRITE,
                          output_tokens=OUTPUT)
    return TokenUsage(input_tokens=FRESH_INPUT, cache_read_tokens=CACHE_READ, output_tokens=OUTPUT,
                      reasoning_tokens=REASONING)


def anthropic_usage() -> dict:
    return {"input_tokens": FRESH_INPUT, "cache_creation_input_tokens": CACHE_WRITE,
            "cache_read_input_tokens": CACHE_READ, "output_tokens": OUTPUT,
            "cache_creation": {"ephemeral_5m_input_tokens": CACHE_WRITE, "ephemeral_1h_input_tokens": 0}}


def chat_usage(provider: str) -> dict:
    prompt = FRESH_INPUT + CACHE_READ
    usage: dict = {"prompt_tokens": prompt, "completion_tokens": OUTPUT, "total_tokens": prompt + OUTPUT,
                   "completion_tokens_details": {"reasoning_tokens": REASONING}}
    if provider == "deepseek":
        usage.update(prompt_cache_hit_tokens=CACHE_READ, prompt_cache_miss_tokens=FRESH_INPUT)
    else:
        usage["prompt_tokens_details"] = {"cached_tokens": CACHE_READ}
    return usage


def responses_usage() -> dict:
    prompt = FRESH_INPUT + CACHE_READ
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": CACHE_READ},
            "output_tokens": OUTPUT, "output_tokens_details": {"reasoning_tokens": REASONING},
            "total_tokens": prompt + OUTPUT}


@dataclass
class Seen:
    """One request the fake answered, and what the script made of it."""

    provider: str
    path: str
    headers: dict[str, str]
    body: dict
    action: str  # "tool_call", "final", "plain" or "count"
    tool_output: str | None = None  # the output quoted in a final answer
    query: str = ""  # the query string, as sent (Claude Code adds ?beta=true)


@dataclass
class Turn:
    """The script's decision for one request."""

    action: str
    tool: dict | None = None  # the offered tool to call: {"name", "kind", "argument"}
    command: str = ""
    text: str = PLAIN_ANSWER
    tool_output: str | None = None


def _tool_name(tool: dict) -> str:
    if "function" in tool and isinstance(tool["function"], dict):  # chat completions
        return str(tool["function"].get("name", ""))
    return str(tool.get("name") or tool.get("type") or "")


def _tool_schema(tool: dict) -> dict:
    if "function" in tool and isinstance(tool["function"], dict):
        return tool["function"].get("parameters") or {}
    return tool.get("input_schema") or tool.get("parameters") or {}


def _shell_tool(tools: list) -> dict | None:
    """The offered tool that runs a shell command and how to fill its arguments."""
    for tool in tools or ():
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "local_shell":
            return {"name": "local_shell", "kind": "local_shell", "argument": None}
        name = _tool_name(tool)
        if name not in SHELL_TOOLS:
            continue
        properties = _tool_schema(tool).get("properties") or {}
        for argument in ("command", "cmd"):
            if argument in properties:
                kind = "argv" if properties[argument].get("type") == "array" else "string"
                return {"name": name, "kind": kind, "argument": argument}
    return None


def _has_tool_result(body: dict) -> bool:
    for message in body.get("messages") or ():
        if message.get("role") == "tool":
            return True
        content = message.get("content")
        if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
            return True
    items = body.get("input")
    if isinstance(items, list):
        return any(isinstance(i, dict) and str(i.get("type", "")).endswith("_output") for i in items)
    return False


def _tool_results_text(body: dict) -> str:
    parts: list = []
    for message in body.get("messages") or ():
        if message.get("role") == "tool":
            parts.append(message.get("content"))
        content = message.get("content")
        if isinstance(content, list):
            parts.extend(b.get("content") for b in content if isinstance(b, dict) and b.get("type") == "tool_result")
    items = body.get("input")
    if isinstance(items, list):
        parts.extend(i.get("output") for i in items if isinstance(i, dict) and str(i.get("type", "")).endswith("_output"))
    return orjson.dumps(parts).decode()


def decide(body: dict, raw: bytes) -> Turn:
    """What the scripted model answers to ``body``."""
    tools = body.get("tools") or []
    nonce = NONCE.search(raw.decode(errors="replace"))
    if _has_tool_result(body):
        found = TOOL_OUTPUT.search(_tool_results_text(body))
        if found:
            return Turn("final", text=f"The command printed {found.group(0)}.", tool_output=found.group(0))
        return Turn("final", text=NO_OUTPUT_ANSWER)
    tool = _shell_tool(tools)
    if nonce and tool:
        return Turn("tool_call", tool=tool, command=f"printf 'samalink-tool-%s\\n' {nonce.group(1)}")
    return Turn("plain")


def _arguments(turn: Turn) -> dict:
    tool = turn.tool or {}
    if tool.get("kind") == "argv":
        return {tool["argument"]: ["bash", "-lc", turn.command]}
    arguments = {tool.get("argument") or "command": turn.command}
    if tool.get("name") == "Bash":
        arguments["description"] = "Print the check's output"
    return arguments


def _sse(data: dict | bytes, event: str | None = None) -> bytes:
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + payload + b"\n\n"


def _wants_thinking(body: dict) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


@dataclass
class AgentUpstream:
    """The running fake: its URL and every request it answered (``seen``)."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # --- inspection -------------------------------------------------------

    def mark(self) -> int:
        """A position in ``seen``: pass it to ``since`` to get what came after."""
        with self._lock:
            return len(self.seen)

    def since(self, position: int) -> list[Seen]:
        """The requests answered after ``position``."""
        with self._lock:
            return list(self.seen[position:])

    # --- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Serve on a free 127.0.0.1 port in a background thread."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_post("/{provider}/chat/completions", self._chat)
            app.router.add_post("/{provider}/responses", self._responses)
            app.router.add_post("/{provider}/v1/messages/count_tokens", self._count_tokens)
            app.router.add_post("/{provider}/v1/messages", self._messages)
            self._runner = web.AppRunner(app, shutdown_timeout=0.5)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="agent-upstream", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the agent upstream did not start")

    def stop(self) -> None:
        """Stop serving and end the thread."""
        if self._loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        try:
            future.result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    # --- handlers ----------------------------------------------------------

    async def _read(self, request: web.Request) -> tuple[dict, Turn] | web.Response:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return web.json_response({"error": {"message": "body is not JSON"}}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": {"message": "body is not an object"}}, status=400)
        turn = Turn("count") if request.path.endswith("/count_tokens") else decide(body, raw)
        with self._lock:
            self.seen.append(Seen(request.match_info["provider"], request.path, dict(request.headers), body,
                                  turn.action, turn.tool_output, request.query_string))
        return body, turn

    async def _count_tokens(self, request: web.Request) -> web.Response:
        read = await self._read(request)
        if isinstance(read, web.Response):
            return read
        return web.json_response({"input_tokens": COUNTED_TOKENS})

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        return response

    # Anthropic Messages ----------------------------------------------------

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        read = await self._read(request)
        if isinstance(read, web.Response):
            return read
        body, turn = read
        model = body.get("model")
        blocks: list[dict] = []
        if _wants_thinking(body):
            blocks.append({"type": "thinking", "thinking": THINKING_TEXT, "signature": SIGNATURE})
        if turn.action == "tool_call":
            blocks.append({"type": "text", "text": "I will run the check."})
            blocks.append({"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20], "name": turn.tool["name"],
                           "input": _arguments(turn)})
        else:
            blocks.append({"type": "text", "text": turn.text})
        stop_reason = "tool_use" if turn.action == "tool_call" else "end_turn"
        message = {"id": "msg_" + uuid.uuid4().hex[:20], "type": "message", "role": "assistant", "model": model,
                   "content": blocks, "stop_reason": stop_reason, "stop_sequence": None, "usage": anthropic_usage()}
        if not body.get("stream"):
            return web.json_response(message)

        response = await self._stream(request)

        async def send(event: dict) -> None:
            await response.write(_sse(event, event["type"]))

        await send({"type": "message_start", "message": dict(message, content=[], stop_reason=None,
                                                               usage=dict(anthropic_usage(), output_tokens=1))})
        for index, block in enumerate(blocks):
            if block["type"] == "thinking":
                await send({"type": "content_block_start", "index": index,
                            "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
                await send({"type": "content_block_delta", "index": index,
                            "delta": {"type": "thinking_delta", "thinking": block["thinking"]}})
                await send({"type": "content_block_delta", "index": index,
                            "delta": {"type": "signature_delta", "signature": block["signature"]}})
            elif block["type"] == "text":
                await send({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
                for piece in re.findall(r"\S+\s*", block["text"]):
                    await send({"type": "content_block_delta", "index": index,
                                "delta": {"type": "text_delta", "text": piece}})
            else:
                await send({"type": "content_block_start", "index": index,
                            "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
                await send({"type": "content_block_delta", "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": orjson.dumps(block["input"]).decode()}})
            await send({"type": "content_block_stop", "index": index})
        await send({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": OUTPUT}})
        await send({"type": "message_stop"})
        return response

    # OpenAI chat completions ---------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        read = await self._read(request)
        if isinstance(read, web.Response):
            return read
        body, turn = read
        provider = request.match_info["provider"]
        model = body.get("model")
        # DeepSeek (and others' thinking models) say what they reasoned in reasoning_content.
        reasoning = THINKING_TEXT if provider == "deepseek" else None
        calls = None
        if turn.action == "tool_call":
            calls = [{"id": "call_" + uuid.uuid4().hex[:20], "type": "function",
                      "function": {"name": turn.tool["name"], "arguments": orjson.dumps(_arguments(turn)).decode()}}]
        finish = "tool_calls" if calls else "stop"
        if not body.get("stream"):
            message: dict = {"role": "assistant", "content": None if calls else turn.text}
            if reasoning:
                message["reasoning_content"] = reasoning
            if calls:
                message["tool_calls"] = calls
            return web.json_response({
                "id": "chatcmpl-" + uuid.uuid4().hex[:20], "object": "chat.completion", "created": int(time.time()),
                "model": model, "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": chat_usage(provider),
            })

        response = await self._stream(request)
        include_usage = (body.get("stream_options") or {}).get("include_usage") is True

        async def chunk(delta: dict, finish_reason: str | None = None, usage: dict | None = None,
                        choices: bool = True) -> None:
            data: dict = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
                          "model": model,
                          "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}] if choices else []}
            if include_usage:
                data["usage"] = usage
            await response.write(_sse(data))

        await chunk({"role": "assistant", "content": ""})
        if reasoning:
            await chunk({"reasoning_content": reasoning})
        if calls:
            call = calls[0]
            await chunk({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                         "function": {"name": call["function"]["name"], "arguments": ""}}]})
            await chunk({"tool_calls": [{"index": 0, "function": {"arguments": call["function"]["arguments"]}}]})
        else:
            for piece in re.findall(r"\S+\s*", turn.text):
                await chunk({"content": piece})
        await chunk({}, finish)
        if include_usage:
            await chunk({}, usage=chat_usage(provider), choices=False)
        await response.write(_sse(b"[DONE]"))
        return response

    # OpenAI Responses API ----------------------------------------------------

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        read = await self._read(request)
        if isinstance(read, web.Response):
            return read
        body, turn = read
        response_id = "resp_" + uuid.uuid4().hex[:24]
        items: list[dict] = [{
            "id": "rs_" + uuid.uuid4().hex[:20], "type": "reasoning",
            "summary": [{"type": "summary_text", "text": THINKING_TEXT}],
            "encrypted_content": "gAAAAfake" if "reasoning.encrypted_content" in (body.get("include") or ()) else None,
        }]
        if turn.action == "tool_call" and turn.tool["kind"] == "local_shell":
            items.append({"id": "lsh_" + uuid.uuid4().hex[:20], "type": "local_shell_call", "status": "completed",
                          "call_id": "call_" + uuid.uuid4().hex[:20],
                          "action": {"type": "exec", "command": ["bash", "-lc", turn.command]}})
        elif turn.action == "tool_call":
            items.append({"id": "fc_" + uuid.uuid4().hex[:20], "type": "function_call", "status": "completed",
                          "call_id": "call_" + uuid.uuid4().hex[:20], "name": turn.tool["name"],
                          "arguments": orjson.dumps(_arguments(turn)).decode()})
        else:
            items.append({"id": "msg_" + uuid.uuid4().hex[:20], "type": "message", "status": "completed",
                          "role": "assistant",
                          "content": [{"type": "output_text", "text": turn.text, "annotations": []}]})
        whole = {"id": response_id, "object": "response", "created_at": int(time.time()), "status": "completed",
                 "model": body.get("model"), "output": items, "usage": responses_usage(),
                 "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)), "tool_choice": "auto",
                 "tools": [], "store": bool(body.get("store", False)), "error": None, "incomplete_details": None}
        if not body.get("stream"):
            return web.json_response(whole)

        response = await self._stream(request)
        sequence = 0

        async def send(event: dict) -> None:
            nonlocal sequence
            event["sequence_number"] = sequence
            sequence += 1
            await response.write(_sse(event, event["type"]))

        started = dict(whole, status="in_progress", output=[], usage=None)
        await send({"type": "response.created", "response": started})
        await send({"type": "response.in_progress", "response": started})
        for index, item in enumerate(items):
            if item["type"] == "message":
                await send({"type": "response.output_item.added", "output_index": index,
                            "item": dict(item, status="in_progress", content=[])})
                await send({"type": "response.content_part.added", "item_id": item["id"], "output_index": index,
                            "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}})
                for piece in re.findall(r"\S+\s*", turn.text):
                    await send({"type": "response.output_text.delta", "item_id": item["id"], "output_index": index,
                                "content_index": 0, "delta": piece})
                await send({"type": "response.output_text.done", "item_id": item["id"], "output_index": index,
                            "content_index": 0, "text": turn.text})
                await send({"type": "response.content_part.done", "item_id": item["id"], "output_index": index,
                            "content_index": 0, "part": item["content"][0]})
            elif item["type"] == "function_call":
                await send({"type": "response.output_item.added", "output_index": index,
                            "item": dict(item, status="in_progress", arguments="")})
                await send({"type": "response.function_call_arguments.delta", "item_id": item["id"],
                            "output_index": index, "delta": item["arguments"]})
                await send({"type": "response.function_call_arguments.done", "item_id": item["id"],
                            "output_index": index, "arguments": item["arguments"]})
            elif item["type"] == "reasoning":
                await send({"type": "response.output_item.added", "output_index": index,
                            "item": dict(item, summary=[])})
                await send({"type": "response.reasoning_summary_part.added", "item_id": item["id"],
                            "output_index": index, "summary_index": 0, "part": {"type": "summary_text", "text": ""}})
                await send({"type": "response.reasoning_summary_text.delta", "item_id": item["id"],
                            "output_index": index, "summary_index": 0, "delta": THINKING_TEXT})
                await send({"type": "response.reasoning_summary_text.done", "item_id": item["id"],
                            "output_index": index, "summary_index": 0, "text": THINKING_TEXT})
                await send({"type": "response.reasoning_summary_part.done", "item_id": item["id"],
                            "output_index": index, "summary_index": 0, "part": item["summary"][0]})
            else:
                await send({"type": "response.output_item.added", "output_index": index, "item": item})
            await send({"type": "response.output_item.done", "output_index": index, "item": item})
        await send({"type": "response.completed", "response": whole})
        return response
