"""Password hashing (argon2id) and the password rules.

Rules follow NIST SP 800-63B: at least 8 characters, up to 128 allowed, no
composition rules, and the most common passwords refused.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 8
MAX_LENGTH = 128
COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")

_hasher = PasswordHasher()  # argon2id with the library's current recommended cost


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


# A fixed hash to verify against when the e-mail is unknown, so both answers take as long.
_DUMMY_HASH = _hasher.hash("samalink-timing-equaliser")


def burn_verify_time() -> None:
    """Spend the time of one verification without any real hash."""
    verify_password(_DUMMY_HASH, "not-the-password")


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The refused passwords, lower-cased."""
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def password_problem(password: str, email: str | None = None) -> str | None:
    """Why ``password`` is refused, or None when it is acceptable."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    lowered = password.lower()
    if lowered in common_passwords():
        return "This password is too common. Choose one that is harder to guess."
    if email and lowered == email.lower():
        return "Do not use your e-mail address as your password."
    if email and lowered == email.split("@")[0].lower():
        return "Do not use your e-mail name as your password."
    if len(set(password)) == 1:
        return "Do not use a single repeated character."
    return None
