"""Checks on request headers and query strings before any handler reads them.

aiohttp's HTTP parser answers what it cannot parse with a plain-text 400 that
quotes the offending bytes, and logs the same bytes: for an oversized or
malformed ``Authorization`` header that is the customer's key. So the parser's
limits are raised (``PARSER_LIMITS``, passed to ``web.Application`` as
``handler_args``) well above what the gateway accepts, and ``header_guard``
refuses the rest itself with a JSON error in the endpoint's shape that names
the header or parameter but never quotes its value. What the parser still
refuses (a header above the raised limit, a NUL byte) is answered by
``_parser_refusal`` instead of aiohttp's default: JSON, no quoted bytes, one
log line with the error class only.
"""

from __future__ import annotations

import logging
import unicodedata

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from ..errors import ApiError, anthropic_error_body, openai_error_body
from .http import Handler, error_response

log = logging.getLogger("samalink.gateway.guards")

# The largest header value the gateway reads (keys are under 100 bytes).
MAX_HEADER_BYTES = 8 * 1024
# The parser's own limits: far above MAX_HEADER_BYTES, so header_guard decides.
PARSER_LIMIT_BYTES = 64 * 1024
PARSER_LIMITS = {"max_field_size": PARSER_LIMIT_BYTES, "max_line_size": PARSER_LIMIT_BYTES}
# Headers whose value must be printable ASCII: keys, and what goes upstream.
ASCII_HEADERS = ("Authorization", "x-api-key", "anthropic-beta", "anthropic-version")
# Paths that answer in Anthropic's error shape.
ANTHROPIC_PATHS = ("/v1/messages", "/v1/messages/count_tokens")


def _printable_ascii(value: str) -> bool:
    return all(" " <= char <= "~" for char in value)


def _clean_text(value: str) -> bool:
    """No control character and no lone surrogate (undecodable bytes arrive as those)."""
    return not any(unicodedata.category(char) in ("Cc", "Cs") for char in value)


def header_problem(headers) -> ApiError | None:
    """Why these headers are refused (the error names a header, never quotes a value), or None."""
    for name, value in headers.items():
        if len(value) > MAX_HEADER_BYTES:
            shown = name if _printable_ascii(name) and len(name) <= 64 else "A"
            return ApiError(431, f"The {shown} header is larger than {MAX_HEADER_BYTES} bytes.",
                            code="header_too_large", param=name if shown != "A" else None,
                            type="invalid_request_error")
    for name in ASCII_HEADERS:
        value = headers.get(name)
        if value is not None and not _printable_ascii(value):
            return ApiError(400, f"The {name} header may hold printable ASCII characters only.",
                            code="invalid_header", param=name)
    return None


def query_problem(query) -> ApiError | None:
    """Why this query string is refused (control characters, undecodable bytes), or None."""
    for name, value in query.items():
        if not _clean_text(name):
            return ApiError(400, "A query parameter name holds a control character.", code="invalid_query")
        if not _clean_text(value):
            shown = name if _printable_ascii(name) and len(name) <= 64 else "a query parameter"
            return ApiError(400, f"The {shown} parameter holds a control character.", code="invalid_query",
                            param=name if shown == name else None)
    return None


def error_answer(path: str, error: ApiError) -> web.Response:
    """``error`` in the shape of the endpoint at ``path``: Anthropic, OpenAI or the internal API's."""
    if path.startswith("/v1/"):
        body = anthropic_error_body(error) if path.rstrip("/") in ANTHROPIC_PATHS else openai_error_body(error)
        return web.Response(body=body, status=error.status, content_type="application/json")
    return error_response(error.status, error.message, error.code or "invalid_request", error.type)


@web.middleware
async def header_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse oversized or malformed headers and query strings before any handler reads them."""
    problem = header_problem(request.headers) or query_problem(request.query)
    if problem is not None:
        log.info("refused %s %s: %s", request.method, request.rel_url.path[:100], problem.code)
        return error_answer(request.path, problem)
    return await handler(request)


_aiohttp_handle_error = RequestHandler.handle_error


def _parser_refusal(self, request, status=500, exc=None, message=None):  # type: ignore[no-untyped-def]
    """aiohttp's answer to a request it could not parse, without the bytes it would quote.

    The request line was not understood either, so the endpoint is unknown: the body has
    both shapes' fields (``type`` for Anthropic's SDK, ``error.message``/``code`` for OpenAI's).
    """
    if not isinstance(exc, HttpProcessingError):
        return _aiohttp_handle_error(self, request, status, exc, message)
    too_large = isinstance(exc, LineTooLong)
    log.warning("refused a request the HTTP parser could not read: %s", type(exc).__name__)
    if too_large:
        status, text, code = 431, f"The request line or a header is larger than {PARSER_LIMIT_BYTES} bytes.", "header_too_large"
    else:
        status, text, code = 400, "The request is not valid HTTP (for example a control character in a header).", "invalid_http"
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": text, "param": None, "code": code}}
    response = web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
    response.force_close()
    return response


def setup(app: web.Application) -> None:
    """Put ``header_guard`` in front of every route and quiet the parser's refusals."""
    app.middlewares.append(header_guard)
    RequestHandler.handle_error = _parser_refusal  # type: ignore[method-assign]
