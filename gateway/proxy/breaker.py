"""The circuit breaker of every channel, in memory, shared with the other gateway processes.

A channel that fails ``threshold`` times in a row (a channel failure by the rule of
``upstream_errors``: never a client's error) opens: it is skipped for ``cooldown``
seconds. After the cool-down one request at a time (per process) probes it: success
closes it, failure opens it for another cool-down. The operator may switch a channel
off, and then it is never tried.

The request path only reads and changes memory. A background task writes this
process's transitions (opened, closed by a probe) to ``channel_health`` and adopts every
row another process changed since, every ``poll_interval`` seconds: a channel that one
process saw break is skipped by all of them within about two intervals. Failures that
open nothing stay in the process that saw them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Sequence, TypeVar

from ..accounting.channel_health import BreakerWrite, HealthRow, read_rows, write_breakers
from .. import metrics
from ..background import repeat_every, stop_task
from ..catalog import Channel
from ..db import Database

log = logging.getLogger("samalink.gateway.breaker")

CLOSED, OPEN, HALF_OPEN, OFF = "closed", "open", "half_open", "off"


@dataclass
class ChannelState:
    """What this process knows of one channel."""

    failures: int = 0  # in a row, seen by this process
    open_until: float | None = None  # epoch seconds; None when closed
    disabled: bool = False
    probing: bool = False  # a probe of this process is in flight
    last_error: str | None = None
    last_error_at: float | None = None
    seen_changed_at: datetime | None = None

    def state(self, now: float) -> str:
        if self.disabled:
            return OFF
        if self.open_until is None:
            return CLOSED
        return OPEN if now < self.open_until else HALF_OPEN


def _when(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)


R = TypeVar("R")


def weighted_order(channels: Sequence[Channel], rng: random.Random) -> list[Channel]:
    """``channels`` by priority (lowest first); equal priorities in a random order weighted by ``weight``."""
    if len(channels) == 1:
        return list(channels)
    ordered: list[Channel] = []
    for priority in sorted({c.priority for c in channels}):
        group = [c for c in channels if c.priority == priority]
        while group:
            pick = rng.choices(range(len(group)), weights=[c.weight for c in group])[0]
            ordered.append(group.pop(pick))
    return ordered


class Breakers:
    """Every channel's breaker in this process, kept in step with ``channel_health``."""

    def __init__(self, db: Database | None, threshold: int = 3, cooldown: float = 30.0,
                 poll_interval: float = 1.0, rng: random.Random | None = None) -> None:
        self.db = db
        self.threshold = threshold
        self.cooldown = cooldown
        self.poll_interval = poll_interval
        self.rng = rng or random.Random()
        self.channels: dict[str, ChannelState] = {}
        self._unwritten: dict[str, BreakerWrite] = {}
        self._task: asyncio.Task | None = None

    def _state(self, channel: str) -> ChannelState:
        state = self.channels.get(channel)
        if state is None:
            state = self.channels[channel] = ChannelState()
        return state

    def state(self, channel: str) -> str:
        """``closed``, ``open``, ``half_open`` (cool-down over, waiting for a probe) or ``off``."""
        return self._state(channel).state(time.time())

    def order(self, channels: Sequence[Channel]) -> list[Channel]:
        """The channels to try, in order: switched-off ones left out, open ones after the rest.

        An open channel stays in the list (last, soonest to reopen first) so that a request
        whose every channel is open still gets one try; ``admit`` decides at the time.
        """
        now = time.time()
        ready: list[Channel] = []
        waiting: list[tuple[float, Channel]] = []
        for channel in weighted_order(channels, self.rng):
            state = self._state(channel.id)
            if state.disabled:
                continue
            if state.open_until is not None and now < state.open_until:
                waiting.append((state.open_until, channel))
            else:
                ready.append(channel)
        if waiting:
            waiting.sort(key=lambda pair: pair[0])
            ready.extend(channel for _, channel in waiting)
        return ready

    def admit(self, channel: str, last_resort: bool = False) -> bool:
        """Whether a request may try ``channel`` now; a half-open channel admits one probe at a time.

        ``last_resort`` (nothing was tried yet and nothing else is left) admits an open channel.
        """
        state = self._state(channel)
        now = time.time()
        current = state.state(now)
        if current == CLOSED:
            return True
        if current == HALF_OPEN and not state.probing:
            state.probing = True
            return True
        return current != OFF and last_resort

    def succeeded(self, channel: str) -> None:
        """The channel answered: count from zero, and close it if a probe was what answered."""
        state = self._state(channel)
        state.failures = 0
        state.probing = False
        if state.open_until is not None:
            state.open_until = None
            log.info("channel %s closed again", channel)
            self._remember(channel, state)

    def failed(self, channel: str, error_class: str | None) -> None:
        """The channel failed: after ``threshold`` in a row, or as a probe, it opens for a cool-down."""
        state = self._state(channel)
        now = time.time()
        state.failures += 1
        state.last_error = (error_class or "upstream_error")[:200]
        state.last_error_at = now
        probe_failed = state.probing or (state.open_until is not None and now >= state.open_until)
        state.probing = False
        if probe_failed or state.failures >= self.threshold:
            state.open_until = now + self.cooldown
            state.failures = 0
            log.warning("channel %s opened for %.0f s after %s", channel, self.cooldown, state.last_error)
            # Only an opening is shared: a single failure written as "closed" would close
            # the breaker another process has just opened.
            self._remember(channel, state)

    def abandoned(self, channel: str) -> None:
        """A try ended without a verdict (the request was cancelled): let another probe in."""
        self._state(channel).probing = False

    def _remember(self, channel: str, state: ChannelState) -> None:
        changed = datetime.now(timezone.utc)
        state.seen_changed_at = changed
        self._unwritten[channel] = BreakerWrite(channel, _when(state.open_until), state.last_error,
                                                _when(state.last_error_at), changed)

    def adopt(self, rows: list[HealthRow]) -> None:
        """Take every row changed since this process last saw it (by another process or the operator)."""
        for row in rows:
            state = self._state(row.channel)
            if state.seen_changed_at is not None and row.changed_at <= state.seen_changed_at:
                continue
            if row.channel in self._unwritten:
                continue  # this process's newer change is about to be written over it
            state.seen_changed_at = row.changed_at
            state.disabled = row.disabled
            state.open_until = None if row.open_until is None else row.open_until.timestamp()
            if state.open_until is None:
                state.failures = 0
            state.last_error = row.last_error
            state.last_error_at = None if row.last_error_at is None else row.last_error_at.timestamp()

    def set_disabled(self, row: HealthRow) -> None:
        """Apply the operator's switch at once in this process (the others adopt it on their next poll)."""
        state = self._state(row.channel)
        state.disabled = row.disabled
        state.open_until = None if row.open_until is None else row.open_until.timestamp()
        state.seen_changed_at = row.changed_at
        self._unwritten.pop(row.channel, None)

    def last_error(self, channel: str) -> tuple[str | None, datetime | None]:
        """The channel's last failure as this process knows it, and when."""
        state = self._state(channel)
        return state.last_error, _when(state.last_error_at)

    async def sync(self) -> None:
        """Write this process's changes, then adopt what the others wrote."""
        if self.db is None:
            return
        writes = list(self._unwritten.values())
        if writes:
            await self.db.transaction(write_breakers, writes)
            for write in writes:
                if self._unwritten.get(write.channel) is write:
                    del self._unwritten[write.channel]
        self.adopt(await self.db.read(read_rows))
        now = time.time()
        for channel, state in self.channels.items():
            metrics.set_breaker(channel, state.state(now))

    async def start(self) -> None:
        """Adopt the stored state, then keep in step in the background."""
        await self.sync()
        self._task = repeat_every(self.poll_interval, self.sync, "channel health sync")

    async def close(self) -> None:
        """Stop polling and write what is left."""
        await stop_task(self._task)
        self._task = None
        try:
            await self.sync()
        except Exception as exc:  # noqa: BLE001 - shutting down: the breakers reopen on their own
            log.warning("channel health not written at shutdown (%s)", type(exc).__name__)
