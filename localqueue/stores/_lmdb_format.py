"""The byte layout of the LMDB queue store: records, index keys and per-queue counts.

Sub-databases (all in one environment):

* ``records``: message id -> packed :class:`Record` (the whole message);
* ``visible``: ``queue NUL level visible_at seq`` -> ``kind id`` (``kind id NUL group``
  for a message of a group, version 5), one entry per message that is not dead, ordered
  the way ``lease`` hands messages out: ``level`` orders the priorities highest first,
  and ``visible_at`` is ``available_at`` for a pending message (kind ``P``) and
  ``lease_expires_at`` for an inflight one (kind ``I``). The first entry of each level
  is that priority's next message; lease walks the levels (one seek each);
* ``dead``: ``queue NUL dead_at seq`` -> id, the dead letters oldest death first;
* ``counts``: queue -> (pending, inflight, dead) stored counts; a queue with no message
  has no entry, so ``counts`` lists the queues;
* ``keys`` (version 2): ``queue NUL key`` -> id of the message holding that key (waiting
  or leased; a dead letter holds none), written in the transaction that changes it;
* ``settings`` (version 3): queue -> the settings of a queue given any (its pause;
  version 5: and its limits, and when its rate lets the next lease start: see
  :mod:`localqueue.stores._lmdb_limits`);
* ``retention`` (version 4): queue -> its retention and how many history records it
  holds (:class:`Retention`), written by ``keep`` and by every settle that records;
* ``history`` (version 4): ``queue NUL finished_at seq`` -> packed :class:`HistoryRow`,
  oldest finish first, and ``history_ids``: message id -> its key in ``history``;
* ``live`` (version 5): ``queue NUL lease_expires_at seq`` -> ``NUL group`` (empty: no
  group), one entry per inflight message of a queue with ``max_inflight`` or
  ``per_group``, and only of those queues (see :mod:`localqueue.stores._lmdb_limits`);
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
from localqueue.history import HistoryRow
from localqueue.stores.base import DEAD, INFLIGHT, WAITING
from localqueue.stores.record import StoredMessage

__all__ = [
    "DEAD",
    "INFLIGHT",
    "WAITING",
    "Counts",
    "Record",
    "Retention",
    "entry_id",
    "group_suffix",
    "history_key",
    "index_key",
    "key_entry",
    "key_time",
    "level",
    "level_after",
    "pack_history",
    "queue_prefix",
    "time_key",
    "unpack_history",
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


def time_key(queue: str, when: float) -> bytes:
    """``queue NUL when``: the start of the index keys of ``queue`` at time ``when``."""
    return queue_prefix(queue) + _sortable(when)


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


def group_suffix(group: str | None) -> bytes:
    """What follows the id in a ``visible`` value (and makes a ``live`` value): nothing
    for a message without a group, NUL and the group's bytes otherwise."""
    return b"" if group is None else b"\x00" + group.encode()


def entry_id(value: bytes) -> bytes:
    """The message id of a ``visible`` value (``kind id``, maybe ``NUL group`` after)."""
    return value[1:].partition(b"\x00")[0]


def key_entry(queue: str, key: str) -> bytes:
    """The ``keys`` sub-database's key for ``key`` of ``queue``."""
    return queue_prefix(queue) + key.encode()


# -- records ---------------------------------------------------------------------------

# format, state, which optional times are set (bit 7, version 5: the lease is counted in
# ``live``), attempts, seq, then six times:
# enqueued_at, available_at, leased_at, lease_expires_at, failed_at, dead_at; format 2
# adds the priority. Then the fields queue, leased_by, lease_token, last_error (format
# 2: and key), each a length (or _NONE) and its bytes, and the value to the end.
# Format 3 adds a seventh time, first_started_at, and a sixth field, errors; format 4 a
# seventh field, the group. A record without a group is still written in format 3 (what
# format 4 would say, one field shorter: the lease of a queue without groups packs and
# unpacks no more than before groups).
_HEADS = {
    1: struct.Struct(">BBBQQ6d"),
    2: struct.Struct(">BBBQQ6dq"),
    3: struct.Struct(">BBBQQ7dq"),
    4: struct.Struct(">BBBQQ7dq"),
}
_FIELDS = {1: 4, 2: 5, 3: 6, 4: 7}
_LEN = struct.Struct(">I")
_NONE = 0xFFFFFFFF  # length that stands for None
_FORMAT, _GROUP_FORMAT = 3, 4
_COUNTED = 1 << 7  # in the byte of optional times present: the lease is in ``live``
_OPTIONAL_TIMES = (
    "available_at",
    "leased_at",
    "lease_expires_at",
    "failed_at",
    "dead_at",
    "first_started_at",
)


@dataclass(slots=True)
class Record(StoredMessage):
    """A :class:`StoredMessage` with its LMDB key and value: ``seq`` orders the index.
    ``counted`` (version 5): its lease has an entry in ``live`` (a bit of the record, so
    that settling a lease of a queue without limits reads nothing more to know it has
    none)."""

    counted: bool = False

    def index_entry(self) -> tuple[bool, bytes]:
        """(is it in the dead index, its key there)."""
        if self.state == DEAD:
            assert self.dead_at is not None
            return True, index_key(self.queue, self.dead_at, self.seq)
        return False, visible_key(self.queue, self.priority, self.visible_at(), self.seq)

    def live_entry(self) -> bytes:
        """Its key in ``live``: an inflight record of a queue that counts its leases."""
        assert self.lease_expires_at is not None
        return index_key(self.queue, self.lease_expires_at, self.seq)

    def pack(self) -> bytes:
        present = 0
        times = [self.enqueued_at]
        for bit, name in enumerate(_OPTIONAL_TIMES):
            when = getattr(self, name)
            if when is not None:
                present |= 1 << bit
            times.append(0.0 if when is None else when)
        if self.counted:
            present |= _COUNTED
        form = _FORMAT if self.group is None else _GROUP_FORMAT
        head = _HEADS[form]
        fixed = (form, self.state, present, self.attempts, self.seq, *times, self.priority)
        parts = [head.pack(*fixed)]
        for text in (self.queue, self.leased_by, self.lease_token):
            parts.append(_field(None if text is None else text.encode()))
        parts.append(_field(self.last_error))
        parts.append(_field(None if self.key is None else self.key.encode()))
        parts.append(_field(None if self.errors is None else _join(self.errors)))
        if self.group is not None:
            parts.append(_field(self.group.encode()))
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
        optional += [None] * (len(_OPTIONAL_TIMES) - len(optional))
        fields, offset = _read_fields(data, head.size, _FIELDS[form])
        queue, leased_by, lease_token, last_error, *rest = fields
        key = rest[0] if rest else None
        errors = rest[1] if len(rest) > 1 else None
        group = rest[2] if len(rest) > 2 else None
        assert queue is not None
        record = cls(
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
        record.first_started_at = optional[5]
        record.errors = None if errors is None else _split(errors)
        record.group = None if group is None else group.decode()
        record.counted = bool(present & _COUNTED)
        return record


def _join(errors: list[bytes]) -> bytes:
    """Every attempt's error as one JSON array."""
    return b"[" + b",".join(errors) + b"]"


def _split(joined: bytes) -> list[bytes]:
    """The errors of a JSON array :func:`_join` made, each as its JSON bytes."""
    from localqueue.codec import decode, encode

    return [encode(error) for error in decode(joined)]


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


# -- history (version 4) --------------------------------------------------------------

_RETENTION = struct.Struct(">dqQ")  # keep_seconds (NaN: none), keep_count (-1: none), held


@dataclass(slots=True)
class Retention:
    """A queue's ``retention`` entry: its retention and how many records it holds."""

    seconds: float | None = None
    count: int | None = None
    held: int = 0

    @property
    def on(self) -> bool:
        return self.seconds is not None or self.count is not None

    @classmethod
    def unpack(cls, data: bytes | None) -> Retention:
        if data is None:
            return cls()
        seconds, count, held = _RETENTION.unpack(data)
        return cls(None if seconds != seconds else seconds, None if count < 0 else count, held)

    def pack(self) -> bytes:
        seconds = float("nan") if self.seconds is None else self.seconds
        return _RETENTION.pack(seconds, -1 if self.count is None else self.count, self.held)


# format, flags (first start, duration, exit code present), attempts, exit code, then
# enqueued_at, first_started_at, finished_at, duration; then id, queue, key, status,
# worker, error, errors, output as fields, and the value to the end.
_HISTORY_HEAD = struct.Struct(">BBIq4d")


def history_key(queue: str, finished_at: float, seq: int) -> bytes:
    return index_key(queue, finished_at, seq)


def pack_history(row: HistoryRow) -> bytes:
    flags = (
        (row.first_started_at is not None)
        | (row.duration is not None) << 1
        | (row.exit_code is not None) << 2
    )
    head = _HISTORY_HEAD.pack(
        1,
        flags,
        row.attempts,
        row.exit_code or 0,
        row.enqueued_at,
        row.first_started_at or 0.0,
        row.finished_at,
        row.duration or 0.0,
    )
    texts = (row.id, row.queue, row.key, row.status, row.worker)
    parts = [head, *(_field(None if t is None else t.encode()) for t in texts)]
    parts += [_field(row.error), _field(row.errors), _field(row.output), row.value]
    return b"".join(parts)


def _read_fields(data: bytes, offset: int, count: int) -> tuple[list[bytes | None], int]:
    """``count`` length-prefixed fields of ``data`` from ``offset`` (as ``_field`` wrote
    them; None for an absent one), and the offset after them."""
    fields: list[bytes | None] = []
    for _ in range(count):
        (length,) = _LEN.unpack_from(data, offset)
        offset += _LEN.size
        if length == _NONE:
            fields.append(None)
        else:
            fields.append(bytes(data[offset : offset + length]))
            offset += length
    return fields, offset


def unpack_history(data: bytes) -> HistoryRow:
    _, flags, attempts, exit_code, enqueued, first, finished, duration = _HISTORY_HEAD.unpack_from(
        data
    )
    fields, offset = _read_fields(data, _HISTORY_HEAD.size, 8)
    texts = [None if f is None else f.decode() for f in fields[:5]]
    message_id, queue, key, status, worker = texts
    error, errors, output = fields[5:]
    return HistoryRow(
        message_id,
        queue,
        key,
        bytes(data[offset:]),
        status,
        attempts,
        enqueued,
        first if flags & 1 else None,
        finished,
        duration if flags & 2 else None,
        worker,
        exit_code if flags & 4 else None,
        error,
        errors,
        output,
    )
