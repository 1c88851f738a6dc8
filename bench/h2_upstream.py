"""A trivial ASGI upstream for ``http2_client.py``: hypercorn serves it over HTTP/1.1 and h2c.

``POST /v1/chat/completions`` reads the body whole and answers the fake upstream's chat
completion; ``GET /health`` answers ``ok``. Nothing is parsed: the bench measures the
client's side.
"""

from __future__ import annotations

import orjson

CHAT = orjson.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1764072000, "model": "deepseek-v3.2-upstream",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the bench upstream."},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 16, "total_tokens": 28},
})


async def lifespan(receive, send) -> None:
    """Answer an ASGI server's start-up and shut-down messages until it shuts down."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send) -> None:
    """The whole upstream: drain the request, send one fixed JSON answer."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    body = b"ok" if scope["path"] == "/health" else CHAT
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
