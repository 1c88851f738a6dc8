"""Background tasks that live as long as the app: the key, lease and catalogue pollers."""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

log = logging.getLogger("samalink.gateway.background")


def repeat_every(interval: float, step: Callable[[], Awaitable[object]], what: str) -> asyncio.Task:
    """A task running ``step`` every ``interval`` seconds until cancelled.

    A failed step (a database hiccup) is logged by its type and retried at the next turn:
    serving goes on meanwhile. The message is left out, as it may quote a row.
    """

    async def run() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await step()
            except Exception as exc:  # noqa: BLE001 - the next turn retries
                log.warning("%s failed (%s); retrying", what, type(exc).__name__)

    return asyncio.create_task(run(), name=what)


async def stop_task(task: asyncio.Task | None) -> None:
    """Cancel ``task`` and wait until it has finished; ``None`` is a no-op."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
