"""The byte layout of the LMDB queue store: records, index keys and per-queue counts.

Sub-databases (all in one environment):

* ``records``: message id -> packed :class:`Record` (the whole message);
* ``visible``: ``queue NUL level visible_at seq`` -> ``kind id``, one entry per message
  that is not dead, ordered the way ``lease`` hands messages out: ``level`` orders the
  priorities highest first, and ``visible_at`` is ``available_at`` for a pending message
  (kind ``P``) and ``lease_expires_at`` for an inflight one (kind ``I``). The first entry
  of each level is that priority's next message; lease walks the levels (one seek each);
* ``dead``: ``queue NUL dead_at seq`` -> id, the dead letters oldest death first;
* ``counts``: queue -> (pending, inflight, dead) stored counts; a queue with no message
  has no entry, so ``counts`` lists the queues;
* ``keys`` (version 2): ``queue NUL key`` -> id of the message holding that key (waiting
  or leased; a dead letter holds none), written in the transaction that changes it;
* ``meta``: format name, schema version, the environment's id tag, the last sequence.

Version 1 (release 0.3) had no ``keys`` and no level in ``visible``; its records (format
1) have no priority nor key. :func:`migrate_1` rebuilds ``visible`` on opening.

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
    "key_entry",
    "key_time",
    "level",
    "level_after",
    "queue_prefix",
    "visible_key",
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


_TOP = (1 << 63) - 1


def level(priority: int) -> bytes:
    """8 bytes that sort the priorities highest first (a signed 64-bit ``priority``)."""
    return _U64.pack(_TOP - priority)


def level_after(raw: bytes) -> bytes | None:
    """The smallest level key past every key of the level ``raw`` (None: the last one)."""
    (value,) = _U64.unpack(raw)
    return None if value == _MASK else _U64.pack(value + 1)


def visible_key(queue: str, priority: int, when: float, seq: int) -> bytes:
    return queue_prefix(queue) + level(priority) + _sortable(when) + _U64.pack(seq)


def key_entry(queue: str, key: str) -> bytes:
    """The ``keys`` sub-database's key for ``key`` of ``queue``."""
    return queue_prefix(queue) + key.encode()


# -- records ---------------------------------------------------------------------------

# format, state, which optional times are set, attempts, seq, then six times:
# enqueued_at, available_at, leased_at, lease_expires_at, failed_at, dead_at; format 2
# adds the priority. Then the fields queue, leased_by, lease_token, last_error (format
# 2: and key), each a length (or _NONE) and its bytes, and the value to the end.
_HEADS = {1: struct.Struct(">BBBQQ6d"), 2: struct.Struct(">BBBQQ6dq")}
_FIELDS = {1: 4, 2: 5}
_LEN = struct.Struct(">I")
_NONE = 0xFFFFFFFF  # length that stands for None
_FORMAT = 2
_OPTIONAL_TIMES = ("available_at", "leased_at", "lease_expires_at", "failed_at", "dead_at")


class Record(StoredMessage):
    """A :class:`StoredMessage` with its LMDB key and value: ``seq`` orders the index."""

    __slots__ = ()

    def index_entry(self) -> tuple[bool, bytes]:
        """(is it in the dead index, its key there)."""
        if self.state == DEAD:
            assert self.dead_at is not None
            return True, index_key(self.queue, self.dead_at, self.seq)
        return False, visible_key(self.queue, self.priority, self.visible_at(), self.seq)

    def pack(self) -> bytes:
        present = 0
        times = [self.enqueued_at]
        for bit, name in enumerate(_OPTIONAL_TIMES):
            when = getattr(self, name)
            if when is not None:
                present |= 1 << bit
            times.append(0.0 if when is None else when)
        head = _HEADS[_FORMAT]
        fixed = (_FORMAT, self.state, present, self.attempts, self.seq, *times, self.priority)
        parts = [head.pack(*fixed)]
        for text in (self.queue, self.leased_by, self.lease_token):
            parts.append(_field(None if text is None else text.encode()))
        parts.append(_field(self.last_error))
        parts.append(_field(None if self.key is None else self.key.encode()))
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
        form = data[0]
        head = _HEADS.get(form)
        if head is None:
            raise StoreError(f"message {message_id!r} has an unknown record format {form}")
        form, state, present, attempts, seq, enqueued_at, *times = head.unpack_from(data)
        priority = times.pop() if form >= 2 else 0
        if state not in (WAITING, INFLIGHT, DEAD):
            raise StoreError(f"message {message_id!r} has an unknown state {state}")
        optional = [t if present & (1 << bit) else None for bit, t in enumerate(times)]
        offset = head.size
        fields: list[bytes | None] = []
        for _ in range(_FIELDS[form]):
            (length,) = _LEN.unpack_from(data, offset)
            offset += _LEN.size
            if length == _NONE:
                fields.append(None)
            else:
                fields.append(bytes(data[offset : offset + length]))
                offset += length
        queue, leased_by, lease_token, last_error, *rest = fields
        key = rest[0] if rest else None
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
            None if key is None else key.decode(),
            priority,
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
