"""The byte layout of the LMDB queue store: records, index keys and per-queue counts.

Sub-databases (all in one environment):

* ``records``: message id -> packed :class:`Record` (the whole message);
* ``visible``: ``queue NUL visible_at seq`` -> ``kind id``, one entry per message that is
  not dead, ordered the way ``lease`` hands messages out. ``visible_at`` is
  ``available_at`` for a pending message (kind ``P``) and ``lease_expires_at`` for an
  inflight one (kind ``I``), so the first entry of a queue is its next message;
* ``dead``: ``queue NUL dead_at seq`` -> id, the dead letters oldest death first;
* ``counts``: queue -> (pending, inflight, dead) stored counts; a queue with no message
  has no entry, so ``counts`` lists the queues;
* ``meta``: format name, schema version, the environment's id tag, the last sequence.

Queue names are 1-128 characters of ``[A-Za-z0-9._-]``, so a NUL after the name ends a
prefix that no other queue shares. Times are packed so that byte order is numeric order.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from localqueue.errors import StoreError
from localqueue.stores.base import DEAD, INFLIGHT, WAITING
from localqueue.stores.record import StoredMessage

__all__ = [
    "DEAD",
    "INFLIGHT",
    "WAITING",
    "Counts",
    "Record",
    "index_key",
    "key_time",
    "queue_prefix",
]

KIND = {WAITING: b"P", INFLIGHT: b"I"}  # the visible index tags its entries

_U64 = struct.Struct(">Q")
_F64 = struct.Struct(">d")
_SIGN = 1 << 63
_MASK = (1 << 64) - 1


def _sortable(when: float) -> bytes:
    """8 bytes whose unsigned big-endian order is the numeric order of ``when``."""
    (bits,) = _U64.unpack(_F64.pack(when))
    return _U64.pack(bits ^ _MASK if bits & _SIGN else bits | _SIGN)


def _unsortable(raw: bytes) -> float:
    (bits,) = _U64.unpack(raw)
    bits = bits ^ _SIGN if bits & _SIGN else bits ^ _MASK
    (when,) = _F64.unpack(_U64.pack(bits))
    return float(when)


def queue_prefix(queue: str) -> bytes:
    """The key prefix shared by every index entry of ``queue`` and by nothing else."""
    return queue.encode() + b"\x00"


def index_key(queue: str, when: float, seq: int) -> bytes:
    return queue_prefix(queue) + _sortable(when) + _U64.pack(seq)


def key_time(key: bytes, prefix_length: int) -> float:
    """The time packed in an index key whose queue prefix is ``prefix_length`` long."""
    return _unsortable(key[prefix_length : prefix_length + 8])


# -- records ---------------------------------------------------------------------------

# format, state, which optional times are set, attempts, seq, then six times:
# enqueued_at, available_at, leased_at, lease_expires_at, failed_at, dead_at.
_HEAD = struct.Struct(">BBBQQ6d")
_LEN = struct.Struct(">I")
_NONE = 0xFFFFFFFF  # length that stands for None
_FORMAT = 1
_OPTIONAL_TIMES = ("available_at", "leased_at", "lease_expires_at", "failed_at", "dead_at")


class Record(StoredMessage):
    """A :class:`StoredMessage` with its LMDB key and value: ``seq`` orders the index."""

    __slots__ = ()

    def index_entry(self) -> tuple[bool, bytes]:
        """(is it in the dead index, its key there)."""
        if self.state == DEAD:
            assert self.dead_at is not None
            return True, index_key(self.queue, self.dead_at, self.seq)
        return False, index_key(self.queue, self.visible_at(), self.seq)

    def pack(self) -> bytes:
        present = 0
        times = [self.enqueued_at]
        for bit, name in enumerate(_OPTIONAL_TIMES):
            when = getattr(self, name)
            if when is not None:
                present |= 1 << bit
            times.append(0.0 if when is None else when)
        parts = [_HEAD.pack(_FORMAT, self.state, present, self.attempts, self.seq, *times)]
        for text in (self.queue, self.leased_by, self.lease_token):
            parts.append(_field(None if text is None else text.encode()))
        parts.append(_field(self.last_error))
        parts.append(self.value)
        return b"".join(parts)

    @classmethod
    def unpack(cls, message_id: str, data: bytes) -> Record:
        try:
            return cls._unpack(message_id, data)
        except (struct.error, UnicodeDecodeError, AssertionError) as exc:
            raise StoreError(f"corrupt record for message {message_id!r}: {exc}") from None

    @classmethod
    def _unpack(cls, message_id: str, data: bytes) -> Record:
        form, state, present, attempts, seq, enqueued_at, *times = _HEAD.unpack_from(data)
        if form != _FORMAT or state not in (WAITING, INFLIGHT, DEAD):
            raise StoreError(f"message {message_id!r} has an unknown record format {form}")
        optional = [t if present & (1 << bit) else None for bit, t in enumerate(times)]
        offset = _HEAD.size
        fields: list[bytes | None] = []
        for _ in range(4):
            (length,) = _LEN.unpack_from(data, offset)
            offset += _LEN.size
            if length == _NONE:
                fields.append(None)
            else:
                fields.append(bytes(data[offset : offset + length]))
                offset += length
        queue, leased_by, lease_token, last_error = fields
        assert queue is not None
        return cls(
            message_id,
            queue.decode(),
            bytes(data[offset:]),
            state,
            attempts,
            seq,
            enqueued_at,
            optional[0],
            optional[1],
            optional[2],
            None if leased_by is None else leased_by.decode(),
            None if lease_token is None else lease_token.decode(),
            last_error,
            optional[3],
            optional[4],
        )


def _field(raw: bytes | None) -> bytes:
    return _LEN.pack(_NONE) if raw is None else _LEN.pack(len(raw)) + raw


# -- per-queue counts -----------------------------------------------------------------

_COUNTS = struct.Struct(">QQQ")


@dataclass(slots=True)
class Counts:
    """Stored counts of one queue: pending (ready or delayed), inflight (leased, live
    or expired) and dead."""

    pending: int = 0
    inflight: int = 0
    dead: int = 0

    @classmethod
    def unpack(cls, data: bytes | None) -> Counts:
        return cls() if data is None else cls(*_COUNTS.unpack(data))

    def pack(self) -> bytes:
        return _COUNTS.pack(self.pending, self.inflight, self.dead)

    def add(self, state: int, delta: int) -> None:
        if state == WAITING:
            self.pending += delta
        elif state == INFLIGHT:
            self.inflight += delta
        else:
            self.dead += delta

    @property
    def total(self) -> int:
        return self.pending + self.inflight + self.dead
