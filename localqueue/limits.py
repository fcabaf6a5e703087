"""How a queue's rate limit is written (``10/s``, ``600/m``, ``100/h``) and read back,
for ``PersistentQueue.set_limits`` and ``localqueue queue limit --rate``."""

from __future__ import annotations

import enum

__all__ = ["KEEP", "PERIODS", "Keep", "format_rate", "next_due", "parse_rate"]

#: The periods a rate can be given in, by their unit.
PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}


class Keep(enum.Enum):
    """The type of :data:`KEEP`: a limit ``set_limits`` was not given (it is kept)."""

    KEEP = "keep"


KEEP = Keep.KEEP


def parse_rate(rate: str | tuple[int, float]) -> tuple[int, float]:
    """``(count, seconds)`` of a rate given as ``"N/s"``, ``"N/m"`` or ``"N/h"`` (N a
    positive integer), or as that pair already; ValueError otherwise."""
    if isinstance(rate, tuple):
        count, period = rate
    else:
        number, _, unit = str(rate).strip().partition("/")
        if unit not in PERIODS or not number.isdigit():
            raise ValueError(f"a rate is N/s, N/m or N/h (N a positive integer), got {rate!r}")
        count, period = int(number), PERIODS[unit]
    if type(count) is not int or count < 1:
        raise ValueError(f"a rate's count must be a positive integer, got {count!r}")
    if not isinstance(period, int | float) or not 0 < period < 1e9:
        raise ValueError(f"a rate's period must be a positive number of seconds, got {period!r}")
    return count, float(period)


def format_rate(count: int | None, period: float | None) -> str | None:
    """A rate as ``parse_rate`` reads it (``"100/s"``; ``"5/30s"`` for a period that is
    no unit), or None for none."""
    if count is None or period is None:
        return None
    for unit, seconds in PERIODS.items():
        if period == seconds:
            return f"{count}/{unit}"
    return f"{count}/{period:g}s"


def next_due(count: int, period: float, due: float | None, now: float) -> float:
    """When a queue with a rate of ``count`` per ``period`` may start its next lease,
    after one started at ``now`` (``due``: when this one was allowed to; None: no lease
    yet). Starts are spread evenly, one each ``period / count`` seconds at most, so no
    window of ``period`` holds more than ``count`` of them, and a job's own start-up
    jitter cannot push two windows' worth of a burst into one (a partner API counting
    its own windows sees at most the rate)."""
    return max(due or 0.0, now) + period / count
