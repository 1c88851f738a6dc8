"""Teams: accounts shared by members in roles (owner, admin, developer, billing).

``install`` registers the pages and the hooks that pick the account each request shows
(``selection``) and enforce the role rules (``roles``). ``recipients`` says who gets an
account's alert mail, ``account_zone`` which zone its months are counted in.
"""

from __future__ import annotations

from flask import Flask

from .service import account_zone, recipients

__all__ = ["account_zone", "install", "recipients"]


def install(app: Flask) -> None:
    """Register the team pages, the account selection and the role check."""
    from . import selection
    from .routes import bp

    app.register_blueprint(bp)
    selection.install(app)
