"""Teams: accounts shared by members in roles (owner, admin, developer, billing).

``install`` registers the pages and the hooks that pick the account each request shows
(``selection``) and enforce the role rules (``roles``). ``recipients`` says who gets an
account's alert mail.
"""

from __future__ import annotations

from flask import Flask

from .service import recipients

__all__ = ["install", "recipients"]


def install(app: Flask) -> None:
    """Register the team pages, the account selection and the role check."""
    from . import selection
    from .routes import bp

    app.register_blueprint(bp)
    selection.install(app)
