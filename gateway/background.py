"""Background tasks that live as long as the app: the key, lease and catalogue pollers."""

from __future__ import annotations

import asyncio


async def stop_task(task: asyncio.Task | None) -> None:
    """Cancel ``task`` and wait until it has finished; ``None`` is a no-op."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
