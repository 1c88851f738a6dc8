"""Provider keys entered in the operator console: encrypted at rest, masked when shown,
rotated without a restart.

Keys are encrypted with Fernet under ``SECRETS_KEY`` (the same value in every gateway
process) and stored in ``provider_keys``; each process polls the table and keeps the
decrypted keys in memory only. Without ``SECRETS_KEY`` console key entry is switched off.
A key in the environment (the provider's ``api_key_env``) always wins over the console's.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.engine import Connection

from ..background import repeat_every, stop_task
from ..db import Database, provider_keys, upsert, utcnow

log = logging.getLogger("samalink.gateway.provider_keys")

MIN_KEY_LENGTH = 8
MAX_KEY_LENGTH = 500


class KeyEntryOff(Exception):
    """Console key entry is switched off: ``SECRETS_KEY`` is not set."""


def mask(secret: str) -> str:
    """The form a key is shown in: enough to recognise it, never enough to use it."""
    if len(secret) >= 16:
        return f"{secret[:3]}…{secret[-4:]}"
    return f"…{secret[-2:]}"


@dataclass(frozen=True)
class StoredKey:
    """A console key as stored: the provider, its ciphertext, its masked form, when it was set."""

    provider: str
    ciphertext: str
    hint: str
    updated_at: datetime


def read_stored(conn: Connection) -> list[StoredKey]:
    """Every console key, encrypted."""
    return [StoredKey(r.provider, r.ciphertext, r.hint, r.updated_at) for r in conn.execute(sa.select(provider_keys))]


def write_stored(conn: Connection, key: StoredKey) -> None:
    """Store (or replace) one provider's console key."""
    upsert(conn, provider_keys, [{"provider": key.provider, "ciphertext": key.ciphertext, "hint": key.hint,
                                  "updated_at": key.updated_at}],
           keys=["provider"], replace=["ciphertext", "hint", "updated_at"])


def delete_stored(conn: Connection, provider: str) -> bool:
    """Remove one provider's console key; whether there was one."""
    return conn.execute(provider_keys.delete().where(provider_keys.c.provider == provider)).rowcount > 0


class ProviderKeys:
    """This process's decrypted console keys, kept in step with ``provider_keys``."""

    def __init__(self, db: Database | None, secrets_key: str | None, interval: float = 0.5) -> None:
        self.db = db
        self._fernet = Fernet(secrets_key.encode()) if secrets_key else None
        self.interval = interval
        self._keys: dict[str, str] = {}
        self._hints: dict[str, tuple[str, datetime]] = {}
        self._task: asyncio.Task | None = None
        # A poll that read before a change committed must not apply its older rows after it.
        self._lock = asyncio.Lock()

    @property
    def entry_on(self) -> bool:
        """Whether keys can be entered in the console (``SECRETS_KEY`` is set)."""
        return self._fernet is not None

    def get(self, provider: str) -> str | None:
        """The console key of ``provider``, decrypted; None when there is none."""
        return self._keys.get(provider)

    def hint(self, provider: str) -> tuple[str, datetime] | None:
        """The masked console key of ``provider`` and when it was set."""
        return self._hints.get(provider)

    def _apply(self, stored: list[StoredKey]) -> None:
        keys, hints = {}, {}
        for row in stored:
            hints[row.provider] = (row.hint, row.updated_at)
            if self._fernet is None:
                continue
            try:
                keys[row.provider] = self._fernet.decrypt(row.ciphertext.encode()).decode()
            except InvalidToken:
                # Encrypted under another SECRETS_KEY: unusable here, and said so once per refresh.
                log.warning("the console key of provider %s cannot be decrypted with this SECRETS_KEY", row.provider)
        self._keys, self._hints = keys, hints

    async def set(self, provider: str, secret: str) -> tuple[str, datetime]:
        """Encrypt and store ``secret`` for ``provider``, in force here at once; its masked form and time."""
        if self._fernet is None:
            raise KeyEntryOff()
        row = StoredKey(provider, self._fernet.encrypt(secret.encode()).decode(), mask(secret), utcnow())
        async with self._lock:
            await self.db.transaction(write_stored, row)
            self._keys[provider] = secret
            self._hints[provider] = (row.hint, row.updated_at)
        return row.hint, row.updated_at

    async def remove(self, provider: str) -> bool:
        """Forget ``provider``'s console key everywhere; whether there was one."""
        async with self._lock:
            removed = await self.db.transaction(delete_stored, provider)
            self._keys.pop(provider, None)
            self._hints.pop(provider, None)
        return removed

    async def refresh(self) -> None:
        """Read every stored key again."""
        async with self._lock:
            self._apply(await self.db.read(read_stored))

    async def start(self) -> None:
        """Read the stored keys, then keep polling."""
        await self.refresh()
        self._task = repeat_every(self.interval, self.refresh, "provider key refresh")

    async def close(self) -> None:
        """Stop polling."""
        await stop_task(self._task)
        self._task = None
