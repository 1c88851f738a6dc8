"""Response headers that every portal page carries, and the rule every form's text follows."""

from __future__ import annotations

import unicodedata

from flask import Flask, Response, request
from flask_wtf import FlaskForm
from wtforms import TextAreaField

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
])


def add_security_headers(response: Response) -> Response:
    """Strict CSP (no inline script or style), no sniffing, no referrer leaks, no framing."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.is_secure:
        # Only over HTTPS (directly, or through a trusted proxy's X-Forwarded-Proto).
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return response


def install(app: Flask) -> None:
    """Attach the headers to every response."""
    app.after_request(add_security_headers)


# Tab, line feed and carriage return are text in a multi-line field; every other control
# character (NUL above all: PostgreSQL refuses it in text) and every lone surrogate is not.
MULTILINE_ALLOWED = frozenset("\t\n\r")
CONTROL_MESSAGE = "Remove the control characters (such as NUL) from this field."


def has_control_characters(text: str, multiline: bool = False) -> bool:
    """True when ``text`` holds a control character or a lone surrogate."""
    allowed = MULTILINE_ALLOWED if multiline else frozenset()
    return any(unicodedata.category(char) in ("Cc", "Cs") and char not in allowed for char in text)


class PlainTextForm(FlaskForm):
    """A form whose every field refuses control characters with a form error.

    Checked on what the browser sent (before filters such as strip), after the fields'
    own validators; multi-line fields (text areas) may hold tabs and line breaks.
    """

    def validate(self, extra_validators=None) -> bool:
        """The fields' own validation, then the control-character rule on every field."""
        valid = super().validate(extra_validators)
        for field in self:
            multiline = isinstance(field, TextAreaField)
            sent = [value for value in (field.raw_data or []) if isinstance(value, str)]
            if isinstance(field.data, str):
                sent.append(field.data)
            if any(has_control_characters(value, multiline) for value in sent):
                field.errors = [*field.errors, CONTROL_MESSAGE]
                valid = False
        return valid
