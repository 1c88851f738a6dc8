"""Error bodies of the public API, in OpenAI's and in Anthropic's shape.

``ApiError`` carries everything a client is told about a refused or failed
request; ``openai_error_body`` and ``anthropic_error_body`` render it for the
endpoint's wire format. Messages here are shown to customers, so they never
contain a key or prompt text.
"""

from __future__ import annotations

import orjson

# OpenAI's "type" for each status the gateway answers with.
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_balance",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    431: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}

# Anthropic's documented error types, by status.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    422: "invalid_request_error",
    431: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# Every error type Anthropic documents, and every type OpenAI's API answers with: an
# upstream's type is passed on only to a client of a format that knows it.
ANTHROPIC_ERROR_TYPES = frozenset(_ANTHROPIC_TYPES.values()) | {"overloaded_error"}
OPENAI_ERROR_TYPES = frozenset({
    "invalid_request_error", "authentication_error", "permission_error", "not_found_error",
    "rate_limit_error", "insufficient_quota", "server_error", "api_error", "overloaded_error",
})


class ApiError(Exception):
    """A request the gateway answers with an error status and a clear message.

    ``error_class`` is what the request log records (for example
    ``upstream_timeout``); it defaults to the error code. ``anthropic_type``
    overrides the Anthropic error type the status implies (an upstream's own
    type, passed on); ``headers`` go out with the error answer (``retry-after``).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        error_class: str | None = None,
        anthropic_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _OPENAI_TYPES.get(status, "api_error")
        self.error_class = error_class or code
        self.anthropic_type = anthropic_type
        self.headers = headers or {}


def openai_error_dict(error: ApiError) -> dict:
    """The ``{"error": {...}}`` object OpenAI clients expect."""
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.code,
        }
    }


def openai_error_body(error: ApiError) -> bytes:
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return orjson.dumps(openai_error_dict(error))


def anthropic_error_dict(error: ApiError) -> dict:
    """The ``{"type": "error", "error": {...}}`` object Anthropic clients expect."""
    return {
        "type": "error",
        "error": {
            "type": error.anthropic_type or _ANTHROPIC_TYPES.get(error.status, "api_error"),
            "message": error.message,
        },
    }


def anthropic_error_body(error: ApiError) -> bytes:
    """Anthropic's error body: ``{"type": "error", "error": {"type", "message"}}``."""
    return orjson.dumps(anthropic_error_dict(error))


def bad_request(message: str, param: str | None = None, code: str = "invalid_request") -> ApiError:
    """A 400 about the request body, naming the offending field in ``param``."""
    return ApiError(400, message, code=code, param=param)
