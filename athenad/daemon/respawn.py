"""When a worker slot gets a new worker after its worker crashed: a per-slot backoff.

The first crash of a streak is replaced at once; each further one waits twice as long as
the one before, from 0.1 s up to 30 s. A worker that stays up for a minute ends the
streak. Nothing here reads a clock: callers pass ``now``, so the supervisor (on the
monotonic clock) and ``athenad status`` (on a copy shifted to wall-clock time) apply the
same rules.
"""

from __future__ import annotations

import signal

import msgspec

FIRST_DELAY_S = 0.1
MAX_DELAY_S = 30.0
STABLE_AFTER_S = 60.0  # up this long, a slot's worker ends its crash streak
CRASH_WINDOW_S = 60.0  # what "crashes in the last minute" counts
EXIT_REASON = "exit"


def backoff_delay(streak: int) -> float:
    """The wait before replacing the ``streak``-th worker in a row to crash (from 1)."""
    if streak <= 1:
        return 0.0
    # The exponent is bounded so a very long streak cannot overflow the float.
    return min(MAX_DELAY_S, FIRST_DELAY_S * 2.0 ** min(streak - 2, 32))


def crash_reason(code: int) -> str:
    """A dead worker's return code as a reason: the signal's name, or ``exit``."""
    if code >= 0:
        return EXIT_REASON
    try:
        return signal.Signals(-code).name
    except ValueError:  # a signal Python has no name for (most real-time ones)
        return f"SIG{-code}"


def is_crash(*, up: bool, code: int, serving: bool) -> bool:
    """Whether an unasked worker exit is a crash (back off, carry on) rather than a boot
    failure (which, repeated, stops the daemon).

    A worker that was ready crashed, whatever its code. One that dies while starting
    failed to boot, unless a signal ended it once the daemon serves: that is someone's
    kill (the OOM killer, a stray ``kill``), not code that cannot start.
    """
    return up or (code < 0 and serving)


class SlotBackoff(msgspec.Struct):
    """One worker slot's crash record; times are on whatever clock the caller uses."""

    streak: int = 0  # crashes since the slot's worker last stayed up STABLE_AFTER_S
    delay_s: float = 0.0  # the wait chosen at the last crash
    respawn_at: float = 0.0  # no new worker in this slot before this time
    up_since: float | None = None  # when the slot's current worker became ready
    crash_times: list[float] = msgspec.field(default_factory=list)  # within the window

    def came_up(self, now: float) -> None:
        """The slot's worker is ready: from now on it counts towards ending the streak."""
        self.up_since = now

    def settled(self, now: float) -> bool:
        """Whether the slot's worker has stayed up long enough to end the streak."""
        return self.up_since is not None and now - self.up_since >= STABLE_AFTER_S

    def crashed(self, now: float) -> float:
        """Record a crash of the slot's worker; returns the wait before its replacement."""
        if self.settled(now):
            self.streak = 0
        self.up_since = None
        self.streak += 1
        self.delay_s = backoff_delay(self.streak)
        self.respawn_at = now + self.delay_s
        self.crash_times = [*self.recent_crashes(now), now]
        return self.delay_s

    def recent_crashes(self, now: float) -> list[float]:
        return [t for t in self.crash_times if now - t < CRASH_WINDOW_S]

    def backoff_s(self, now: float) -> float:
        """The slot's current backoff: the last crash's wait, 0 once the streak ended."""
        return 0.0 if self.settled(now) else self.delay_s

    def wait_s(self, now: float) -> float:
        """How long until the slot may get a new worker (0 when it may now)."""
        return max(0.0, self.respawn_at - now)

    def shifted(self, offset: float) -> SlotBackoff:
        """A copy with every time moved by ``offset`` (from one clock to another)."""
        return SlotBackoff(
            streak=self.streak,
            delay_s=self.delay_s,
            respawn_at=self.respawn_at + offset,
            up_since=None if self.up_since is None else self.up_since + offset,
            crash_times=[t + offset for t in self.crash_times],
        )
