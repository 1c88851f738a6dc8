"""Two-factor sign-in: TOTP secrets, single-use recovery codes, and the checks on both.

A user turns two-factor on by scanning a QR code (``otpauth://`` URI rendered as SVG)
and typing the current code; ten recovery codes are then shown once and stored only
as SHA-256 digests (each carries 60 random bits, so a fast hash is enough, and sign-in
attempts are throttled). A TOTP code is accepted one 30-second step either side of
now, and never twice: the last accepted step is remembered.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import datetime

import pyotp
import qrcode
import qrcode.image.svg
import sqlalchemy as sa
from markupsafe import Markup
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from ..models import User
from ..timeutil import utcnow

ISSUER = "SAMALink"
RECOVERY_CODE_COUNT = 10
STEP_SECONDS = 30
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no look-alikes (0/o, 1/l/i)


class TwoFactor(db.Model):
    """A user's TOTP secret; ``enabled_at`` is None while enrolment is unfinished."""

    __tablename__ = "two_factor"

    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    enabled_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)
    last_step: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime, nullable=False, default=utcnow)


class RecoveryCode(db.Model):
    """One single-use recovery code, stored as its SHA-256 digest."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False, unique=True)
    used_at: Mapped[datetime | None] = mapped_column(sa.DateTime, nullable=True)


def _digest(code: str) -> str:
    return hashlib.sha256(normalise_recovery_code(code).encode()).hexdigest()


def normalise_recovery_code(code: str) -> str:
    """Lower-case, without spaces or dashes, as typed codes vary."""
    return "".join(ch for ch in code.lower() if ch not in " -")


def settings_for(user: User) -> TwoFactor | None:
    """The user's two-factor row (enabled or still enrolling), or None."""
    return db.session.get(TwoFactor, user.id)


def is_enabled(user: User) -> bool:
    """True when sign-in asks this user for a second factor."""
    row = settings_for(user)
    return row is not None and row.enabled_at is not None


def pending_secret(user: User) -> str:
    """The secret being enrolled (created on first call, kept across reloads of the page)."""
    row = settings_for(user)
    if row is None:
        row = TwoFactor(user_id=user.id, secret=pyotp.random_base32(), last_step=0)
        db.session.add(row)
        db.session.commit()
    return row.secret


def provisioning_uri(user: User, secret: str) -> str:
    """The ``otpauth://`` URI that authenticator apps read from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def qr_svg(uri: str) -> Markup:
    """The QR code of ``uri`` as inline SVG markup (no script, no style attribute)."""
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathFillImage, box_size=10, border=2)
    svg = image.to_string(encoding="unicode")
    svg = svg.replace("<svg ", '<svg role="img" aria-label="QR code for your authenticator app" class="qr-code" ', 1)
    return Markup(svg)


def _matching_step(secret: str, code: str, now: float) -> int | None:
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    current = int(now // STEP_SECONDS)
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def _accept_totp(row: TwoFactor, code: str, now: float | None = None) -> bool:
    step = _matching_step(row.secret, code, time.time() if now is None else now)
    if step is None:
        return False
    # A conditional update, so a code replayed concurrently is accepted at most once.
    claimed = db.session.execute(
        sa.update(TwoFactor).where(TwoFactor.user_id == row.user_id, TwoFactor.last_step < step)
        .values(last_step=step)
    ).rowcount
    db.session.commit()
    return claimed == 1


def _use_recovery_code(user: User, code: str) -> bool:
    if len(normalise_recovery_code(code)) != 12:
        return False
    claimed = db.session.execute(
        sa.update(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.code_hash == _digest(code), RecoveryCode.used_at.is_(None))
        .values(used_at=utcnow())
    ).rowcount
    db.session.commit()
    return claimed == 1


def verify_second_factor(user: User, code: str) -> bool:
    """True when ``code`` is a fresh TOTP code or an unused recovery code (which is then spent)."""
    row = settings_for(user)
    if row is None or row.enabled_at is None:
        return False
    code = (code or "").strip()
    if code.replace(" ", "").isdigit():
        return _accept_totp(row, code)
    return _use_recovery_code(user, code)


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def replace_recovery_codes(user: User) -> list[str]:
    """Ten new recovery codes (the old ones stop working); the only time they are readable."""
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.add_all(RecoveryCode(user_id=user.id, code_hash=_digest(code)) for code in codes)
    db.session.commit()
    return codes


def enable(user: User, code: str) -> list[str] | None:
    """Finish enrolment when ``code`` matches the pending secret; the recovery codes, or None."""
    row = settings_for(user)
    if row is None or row.enabled_at is not None or not _accept_totp(row, code):
        return None
    row = settings_for(user)
    row.enabled_at = utcnow()
    db.session.commit()
    return replace_recovery_codes(user)


def disable(user: User) -> None:
    """Turn two-factor off: the secret and every recovery code are deleted."""
    db.session.execute(sa.delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    db.session.execute(sa.delete(TwoFactor).where(TwoFactor.user_id == user.id))
    db.session.commit()


def unused_recovery_codes(user: User) -> int:
    """How many recovery codes are left."""
    return db.session.scalar(sa.select(sa.func.count(RecoveryCode.id)).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))) or 0
