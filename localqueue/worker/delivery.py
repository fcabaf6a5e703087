"""A delivery: one lease of one message, the unit of a worker's in-flight state.

A message can be delivered more than once (its lease ran out while its job still ran: a
laptop that slept, a stopped process, a store busy past the lease), and the worker that
held the old lease may get the new one. Everything a worker keeps about work in flight is
therefore keyed by the delivery, message id *and* lease token, never by the id alone:
the old delivery's late result, heartbeat or cancellation must not touch the new one.

The states, owned by the loop of :mod:`localqueue.worker.loop`::

    running --> finished --> settling --> settled
       |           |            |
       |           +------------+--> lost       (its lease was lost: result discarded)
       +--> lost                                (job stopped, result discarded)
       +--> cancelled                           (second signal: released, budget kept)

``running``: its job runs in a slot. ``finished``: the handler's verdict is in and waits
for its commit (kept, and its lease kept alive, until the commit succeeds).
``settling``: in a commit now. ``settled``: committed (acked, released or dead). ``lost``:
the store refused its lease. ``cancelled``: a second signal stopped it before it
finished; its message is given back without spending an attempt.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localqueue.message import QueueMessage
    from localqueue.retry.base import AttemptRecord
    from localqueue.worker.engine import Finished

__all__ = ["Delivery", "DeliveryKey", "State", "key_of"]

DeliveryKey = tuple[str, "str | None"]  # (message id, lease token)


def key_of(message: QueueMessage) -> DeliveryKey:
    """The identity of ``message``'s current delivery."""
    return message.id, message.lease_token


class State(enum.Enum):
    RUNNING = "running"
    FINISHED = "finished"
    SETTLING = "settling"
    SETTLED = "settled"
    LOST = "lost"
    CANCELLED = "cancelled"


@dataclass(eq=False)
class Delivery:
    """One lease of ``message`` (its ``lease_token`` is the lease's) and what became of
    it: ``record`` is its counted attempt (None until its job starts), ``verdict`` the
    handler's once it finished, ``stop_requested`` set when a second signal asked its job
    to stop. A lost delivery's job may still run for a moment after its lease is gone:
    it keeps its slot until it ends."""

    message: QueueMessage
    state: State = State.RUNNING
    record: AttemptRecord | None = None
    verdict: Finished | None = None
    stop_requested: bool = False
    started_at: float = field(default_factory=time.time)  # wall clock, for outcome lines
    finished_at: float = 0.0  # when its handler returned

    @property
    def key(self) -> DeliveryKey:
        return key_of(self.message)

    @property
    def id(self) -> str:
        return self.message.id
