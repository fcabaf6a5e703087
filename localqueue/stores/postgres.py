"""PostgresQueueStore: the queue store on a PostgreSQL server, for work spread over hosts.

Same contract and semantics as every other store (``localqueue/stores/base.py``), with
the server as the single source of truth:

* one table per schema (default ``localqueue``), created or migrated on first use under
  an advisory lock and versioned in the schema's ``meta`` table;
* a lease is ONE statement: ``UPDATE ... WHERE seq = (SELECT ... FOR UPDATE SKIP LOCKED
  LIMIT 1) RETURNING ...``, so concurrent workers never wait on each other's rows; a
  queue with limits (max_inflight, rate, per_group) is leased from by one statement at a
  time instead, each after the queue's advisory lock in its own transaction (sent in one
  round trip), so its counts include every lease committed before it;
* leases and heartbeats commit with ``synchronous_commit`` off for their transaction
  only (a server crash may undo a lease: its message is delivered again); puts, acks,
  releases and dead letters wait for the WAL flush as the server is configured to;
* batches are one statement each: ``settle_many`` (settlements, their ``then_put``
  values and the next leases), ``lease_many``, ``extend_leases``;
* every lease and delay is computed from the server's ``now()``, so hosts with skewed
  clocks agree; :meth:`PostgresQueueStore.clock` reads the server's clock too;
* ``put`` (and release / requeue, ``resume``, ``set_limits``, and a ``settle_many``
  that frees a slot of a queue with ``max_inflight`` or ``per_group``) NOTIFY in the
  same statement; a background thread LISTENs on its own connection
  (:mod:`localqueue.backends.pg_listen`), so a blocked ``get_message`` wakes within
  milliseconds;
* connection loss is survived: see :mod:`localqueue.backends.pg`.

Ids are ``<tag>-<n>``: ``n`` from an identity sequence (never reused) and ``tag`` random
per schema, so ids stay unique even across a dropped and recreated schema.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from localqueue import _failpoints
from localqueue.backends import StoreAddress
from localqueue.backends.pg import PgSession
from localqueue.backends.pg_listen import PgListener
from localqueue.errors import Full, LeaseLostError, MessageNotFoundError
from localqueue.history import PRUNE_BATCH, HistoryRow, encode_output
from localqueue.message import QueueSettings, QueueStats
from localqueue.stores import _pg_sql as q
from localqueue.stores.base import (
    PEEK_STATES,
    QueueStore,
    Row,
    check_groups,
    check_keyed,
    hold,
    key_held,
    merged_limits,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from localqueue.outcome import Settlement
    from localqueue.stores.base import OnConflict

__all__ = ["PostgresQueueStore"]

_MAX_SEQ_DIGITS = 18  # fits a bigint
# A settling store prunes a batch of its queue's history (past the age and past the
# count) every this many messages it acks or dead-letters: a kept ack that also looked
# for records past the age every time took 324 us, against 183 us this way and 159 us
# unkept (synchronous_commit off, 1,000 acks, medians of 3).
_PRUNE_EVERY = 50


def _new_tag() -> dict[str, str]:
    return {"queue_tag": secrets.token_hex(4)}


class PostgresQueueStore(QueueStore):
    """Queues in the ``schema`` of the PostgreSQL database ``dsn`` names (by default
    the URL's ``?schema=NAME`` parameter, else ``localqueue``).

    ``busy_timeout`` is how long a statement waits for a lock another session holds
    before StoreLockedError; ``reconnect_timeout`` how long a lost connection is retried
    (with backoff) before StoreError. Thread-safe (threads share one connection and take
    turns); safe across processes and hosts; a connection is never reused after
    ``fork()``.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        busy_timeout: float = 5.0,
        connect_timeout: float = 10.0,
        reconnect_timeout: float = 30.0,
    ) -> None:
        self._session = PgSession(
            dsn,
            schema=schema,
            component="queue",
            version=q.SCHEMA_VERSION,
            tables={
                "m": "messages",
                "q": "queues",
                "s": "queue_settings",
                "h": "history",
            },
            create=q.CREATE,
            migrations=q.MIGRATIONS,
            meta_init=_new_tag,
            busy_timeout=busy_timeout,
            connect_timeout=connect_timeout,
            reconnect_timeout=reconnect_timeout,
        )
        self.schema = self._session.schema
        self.channel = "localqueue_" + hashlib.sha256(self.schema.encode()).hexdigest()[:24]
        render = self._session.render
        self._sql = {  # every statement of _pg_sql, by its constant's name
            name: render(text)
            for name, text in vars(q).items()
            if name.isupper() and not name.startswith("_") and isinstance(text, str)
        }
        self._listener = PgListener(self._session.connect, self.channel)
        # Messages acked or dead-lettered since the last pruning; one short at first, so
        # that a store's first settle prunes (a cron drain of a few jobs a run too).
        self._finished = _PRUNE_EVERY - 1
        # Queues whose last lease found limits: leased from under their lease lock (a
        # lock-free lease statement that finds limits leases nothing and says so).
        self._limited: set[str] = set()

    def __repr__(self) -> str:
        return f"PostgresQueueStore({self._session.describe()!r})"

    @property
    def address(self) -> StoreAddress:
        """A ``postgresql://`` URL naming the database and this store's schema."""
        return StoreAddress("postgres", self._session.url())

    # -- helpers -----------------------------------------------------------------------

    @property
    def _tag(self) -> str:
        return self._session.meta["queue_tag"]

    def _row(self, raw: Sequence[Any]) -> Row:
        """The Row of a ``COLUMNS`` result: the seq (which the id is made of), then the rest."""
        seq, *rest = raw
        return Row(f"{self._tag}-{seq}", *rest)

    def _seq(self, message_id: str) -> int | None:
        prefix = f"{self._tag}-"
        if not isinstance(message_id, str) or not message_id.startswith(prefix):
            return None
        digits = message_id[len(prefix) :]
        if not (digits.isascii() and digits.isdigit()) or len(digits) > _MAX_SEQ_DIGITS:
            return None
        return int(digits)

    def _one(self, conn: psycopg.Connection[Any], name: str, params: dict[str, Any]) -> Any:
        return conn.execute(self._sql[name], params).fetchone()

    def _history_params(self, finishing: int) -> dict[str, Any]:
        """The parameters of a statement that acks or dead-letters ``finishing`` messages
        (and so writes their records and prunes, while the queue keeps a history)."""
        self._finished += finishing
        prune = self._finished >= _PRUNE_EVERY
        if prune:
            self._finished = 0
        return {"tag": self._tag, "batch": PRUNE_BATCH, "prune": prune}

    def _settle(
        self,
        what: str,
        name: str,
        queue: str,
        message_id: str,
        token: str | None,
        **params: Any,
    ) -> tuple[Any, ...]:
        """Run a fenced statement on a held message and return what it returned; raise as
        the contract says when it matched nothing."""

        def op(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
            seq = self._seq(message_id)
            args = {"seq": seq, "queue": queue, "token": token, "channel": self.channel}
            args.update(params)
            if name in ("ACK", "DEAD_LETTER"):
                args.update(self._history_params(1))
            raw = None if seq is None else self._one(conn, name, args)
            if raw is not None:
                return tuple(raw)
            probe = None if seq is None else self._one(conn, "PROBE", args)
            if probe is None and token is None:
                raise MessageNotFoundError(f"no message {message_id!r} in queue {queue!r}")
            if probe is None:
                raise LeaseLostError(
                    f"message {message_id!r} is no longer leased (already settled)"
                )
            raise LeaseLostError(f"lease on message {message_id!r} was lost")

        # Fenced by token, so repeating after a lost connection cannot settle twice;
        # a token-less retry might, so it is not repeated.
        return self._session.run(what, op, retry=token is not None)

    # -- writing -----------------------------------------------------------------------

    def put(
        self,
        queue: str,
        values: Sequence[bytes],
        *,
        delay: float = 0.0,
        maxsize: int = 0,
        priority: int = 0,
        groups: Sequence[str | None] | None = None,
    ) -> list[Row]:
        check_groups(values, groups)
        if not values:
            return []
        params = {
            "queue": queue,
            "values": [bytes(value) for value in values],
            "groups": list(groups) if groups is not None else [None] * len(values),
            "delay": float(delay),
            "priority": priority,
            "channel": self.channel,
            "lock": f"localqueue:{self.schema}:{queue}",
        }

        def op(conn: psycopg.Connection[Any]) -> list[Row]:
            if maxsize <= 0:
                rows = conn.execute(self._sql["PUT"], params).fetchall()
            else:
                with conn.transaction():
                    self._check_room(conn, params, len(values), maxsize)
                    rows = conn.execute(self._sql["PUT"], params).fetchall()
            return [self._row(raw) for raw in rows]

        return self._session.run("put", op, retry=False)

    def _check_room(
        self, conn: psycopg.Connection[Any], params: dict[str, Any], count: int, maxsize: int
    ) -> None:
        """Inside the caller's transaction: Full unless ``count`` more fit (the queue's
        advisory lock held till the commit, so two puts cannot both take the last room)."""
        if maxsize > 0:
            conn.execute(self._sql["LOCK_QUEUE"], params)
            if self._one(conn, "PENDING", params)[0] + count > maxsize:
                raise Full

    def put_keyed(
        self,
        queue: str,
        values: Sequence[bytes],
        keys: Sequence[str | None],
        *,
        on_conflict: OnConflict = "skip",
        delay: float = 0.0,
        maxsize: int = 0,
        priority: int = 0,
        groups: Sequence[str | None] | None = None,
    ) -> tuple[list[Row], list[bool]]:
        check_keyed(values, keys, on_conflict)
        check_groups(values, groups)
        if not values:
            return [], []
        statement = self._sql["PUT_REPLACING" if on_conflict == "replace" else "PUT_KEYED"]
        params: dict[str, Any] = {
            "queue": queue,
            "delay": float(delay),
            "priority": priority,
            "channel": self.channel,
            "lock": f"localqueue:{self.schema}:{queue}",
        }

        def op(conn: psycopg.Connection[Any]) -> tuple[list[Row], list[bool]]:
            rows: list[Row] = []
            duplicates: list[bool] = []
            with conn.transaction():
                self._check_room(conn, params, len(values), maxsize)
                each = zip(values, keys, groups or [None] * len(values), strict=True)
                for value, key, group in each:
                    params["value"], params["key"], params["grp"] = bytes(value), key, group
                    raw, duplicate = self._put_one(conn, statement, params)
                    row = self._row(raw)
                    if duplicate and on_conflict == "error":  # rolls the whole put back
                        raise key_held(queue, key, row.id)
                    rows.append(row)
                    duplicates.append(duplicate)
                if _failpoints.ACTIVE:
                    _failpoints.reached("put-before-commit")
            return rows, duplicates

        return self._session.run("put", op, retry=False)

    def _put_one(
        self, conn: psycopg.Connection[Any], statement: bytes, params: dict[str, Any]
    ) -> tuple[Any, bool]:
        """Insert one keyed value: (its row, False), or (the holder's row, True) when its
        key is held. A holder that is gone by the time it is read (acked meanwhile)
        makes the insert run again."""
        while True:
            raw = conn.execute(statement, params).fetchone()
            if raw is not None:
                return raw, False
            holder = self._one(conn, "KEY_HOLDER", params)
            if holder is not None:
                return holder, True

    def lease(self, queue: str, *, lease_timeout: float, leased_by: str | None) -> Row | None:
        params = self._lease_params(queue, 1, lease_timeout, leased_by)
        params["token"] = params["tokens"][0]

        def op(conn: psycopg.Connection[Any]) -> Row | None:
            if queue not in self._limited:
                limited, *raw = self._one(conn, "LEASE", params)
                if not limited:
                    return None if raw[0] is None else self._row(raw)
            rows = self._lease_limited(conn, "LEASE_MANY_LIMITED", params)
            return self._row(rows[0][2:]) if rows[0][1] is not None else None

        # Repeating a lease whose reply was lost only strands that lease until it expires.
        return self._session.run("lease", op)

    def ack(self, queue: str, message_id: str, lease_token: str | None) -> None:
        self._settle("ack", "ACK", queue, message_id, lease_token)

    def release(
        self,
        queue: str,
        message_id: str,
        lease_token: str | None,
        *,
        delay: float = 0.0,
        error: bytes | None = None,
    ) -> Row:
        return self._row(
            self._settle(
                "release",
                "RELEASE",
                queue,
                message_id,
                lease_token,
                delay=float(delay),
                error=error,
            )
        )

    def dead_letter(
        self, queue: str, message_id: str, lease_token: str | None, *, error: bytes | None = None
    ) -> Row:
        return self._row(
            self._settle("dead_letter", "DEAD_LETTER", queue, message_id, lease_token, error=error)
        )

    def extend_lease(
        self, queue: str, message_id: str, lease_token: str | None, seconds: float
    ) -> Row:
        return self._row(
            self._settle(
                "extend_lease",
                "EXTEND_LEASE",
                queue,
                message_id,
                lease_token,
                seconds=float(seconds),
            )
        )

    # -- batches -----------------------------------------------------------------------

    def _lease_limited(
        self,
        conn: psycopg.Connection[Any],
        name: str,
        params: dict[str, Any],
        failpoint: str | None = None,
    ) -> list[Any]:
        """The rows of the limited lease statement ``name`` (its first column: whether
        the queue still has limits), run after the queue's lease lock in one transaction
        (pipelined: one round trip), so that the statement's snapshot, taken after the
        wait, holds every lease of the queue committed before it."""
        queue = params["queue"]
        self._limited.add(queue)
        params["lease_lock"] = f"localqueue:lease:{self.schema}:{queue}"
        if failpoint is not None and _failpoints.ACTIVE:  # to stop before the commit
            with conn.transaction():
                conn.execute(self._sql["LOCK_LEASES"], params)
                rows = conn.execute(self._sql[name], params).fetchall()
                _failpoints.reached(failpoint)
        else:
            with conn.pipeline(), conn.transaction():
                conn.execute(self._sql["LOCK_LEASES"], params)
                cursor = conn.execute(self._sql[name], params)
            rows = cursor.fetchall()
        if not rows[0][0]:  # the limits were lifted: lock-free again from the next lease
            self._limited.discard(queue)
        return rows

    def _lease_params(
        self, queue: str, n: int, lease_timeout: float, leased_by: str | None
    ) -> dict[str, Any]:
        return {
            "queue": queue,
            "lease": n,
            "timeout": float(lease_timeout),
            "by": leased_by,
            "tokens": [secrets.token_hex(16) for _ in range(n)],
            "held": [],
        }

    def lease_many(
        self, queue: str, n: int, *, lease_timeout: float, leased_by: str | None
    ) -> list[Row]:
        """One statement (``... LIMIT n FOR UPDATE SKIP LOCKED``): one round trip."""
        if n <= 0:
            return []
        params = self._lease_params(queue, n, lease_timeout, leased_by)

        def op(conn: psycopg.Connection[Any]) -> list[Row]:
            if queue not in self._limited:
                rows = conn.execute(self._sql["LEASE_MANY"], params).fetchall()
                if not rows[0][0]:
                    return [self._row(raw[2:]) for raw in rows if raw[1] is not None]
            rows = self._lease_limited(conn, "LEASE_MANY_LIMITED", params)
            return [self._row(raw[2:]) for raw in rows if raw[1] is not None]

        # Repeating leases whose reply was lost only strands them until they expire.
        return self._session.run("lease", op)

    def settle_many(
        self,
        queue: str,
        settlements: Sequence[Settlement],
        *,
        lease: int = 0,
        lease_timeout: float = 30.0,
        leased_by: str | None = None,
    ) -> tuple[list[bool], list[Row]]:
        """ONE statement (one round trip, one commit): every settlement, the values the
        applied ones put on the next queue, and up to ``lease`` new leases."""
        if not settlements:
            return [], self.lease_many(
                queue, lease, lease_timeout=lease_timeout, leased_by=leased_by
            )
        params = self._lease_params(queue, max(0, lease), lease_timeout, leased_by)
        put_ords: list[int] = []
        put_queues: list[str] = []
        put_values: list[bytes] = []
        for ordinal, settlement in enumerate(settlements, 1):
            if settlement.action not in ("acked", "released", "dead"):
                raise ValueError(f"unknown settle action {settlement.action!r}")
            for value in settlement.then_put:
                put_ords.append(ordinal)
                put_queues.append(settlement.to or queue)
                put_values.append(bytes(value))
        params.update(
            settle_tokens=[s.lease_token for s in settlements],
            actions=[s.action for s in settlements],
            delays=[float(s.delay) for s in settlements],
            errors=[s.error for s in settlements],
            durations=[s.duration for s in settlements],
            exit_codes=[s.exit_code for s in settlements],
            outputs=[  # a released message leaves no record
                None if s.action == "released" else encode_output(s.output) for s in settlements
            ],
            put_ords=put_ords,
            put_queues=put_queues,
            put_values=put_values,
            channel=self.channel,
        )

        def op(conn: psycopg.Connection[Any]) -> tuple[list[bool], list[Row]]:
            # ids parse against the schema's tag, known once the session is bootstrapped
            params["seqs"] = seqs = [self._seq(s.message_id) for s in settlements]
            params["held"] = [seq for seq in seqs if seq is not None]
            params.update(self._history_params(sum(s.action != "released" for s in settlements)))
            if queue in self._limited:
                rows = self._lease_limited(
                    conn, "SETTLE_MANY_LIMITED", params, "settle-before-commit"
                )
            elif _failpoints.ACTIVE:  # the same statement, in a transaction to stop in
                with conn.transaction():
                    rows = conn.execute(self._sql["SETTLE_MANY"], params).fetchall()
                    _failpoints.reached("settle-before-commit")
            else:
                rows = conn.execute(self._sql["SETTLE_MANY"], params).fetchall()
            done = set(rows[0][0] or ())
            applied = [ordinal in done for ordinal in range(1, len(settlements) + 1)]
            leased = [self._row(raw[4:]) for raw in rows if raw[3] is not None]
            if rows[0][2] and queue not in self._limited and lease > 0:
                # Settled, and found limits: lease under the queue's lock now.
                params["held"] = []
                more = self._lease_limited(conn, "LEASE_MANY_LIMITED", params)
                leased = [self._row(raw[2:]) for raw in more if raw[1] is not None]
            elif rows[0][2]:
                self._limited.add(queue)
            return applied, leased

        # Not repeated after a lost connection: a token-less settlement could apply twice.
        return self._session.run("settle", op, retry=False)

    def extend_leases(
        self,
        queue: str,
        leases: Sequence[tuple[str, str | None]],
        seconds: float,
        *,
        wait: float | None = None,
    ) -> list[float | None]:
        """One statement for every held lease (a heartbeat)."""
        if not leases:
            return []
        params = {
            "queue": queue,
            "settle_tokens": [token for _, token in leases],
            "seconds": float(seconds),
        }

        def op(conn: psycopg.Connection[Any]) -> list[float | None]:
            params["seqs"] = [self._seq(message_id) for message_id, _ in leases]
            with self._session.waiting_at_most(conn, wait):
                found = dict(conn.execute(self._sql["EXTEND_LEASES"], params).fetchall())
            return [found.get(ordinal) for ordinal in range(1, len(leases) + 1)]

        # Extending again after a lost reply is harmless.
        return self._session.run("extend_leases", op)

    def requeue_dead(self, queue: str, message_id: str, *, delay: float = 0.0) -> Row:
        def op(conn: psycopg.Connection[Any]) -> Row:
            seq = self._seq(message_id)
            params = {"seq": seq, "queue": queue, "delay": float(delay), "channel": self.channel}
            raw = None if seq is None else self._revive(conn, "REQUEUE_DEAD", params)
            if raw is None:
                raise MessageNotFoundError(f"no dead letter {message_id!r} in queue {queue!r}")
            return self._row(raw)

        return self._session.run("requeue_dead", op, retry=False)

    def requeue_all_dead(self, queue: str, *, delay: float = 0.0) -> int:
        params = {"queue": queue, "seq": None, "delay": float(delay), "channel": self.channel}

        def op(conn: psycopg.Connection[Any]) -> int:
            return int(self._revive(conn, "REQUEUE_ALL_DEAD", params)[0])

        return self._session.run("requeue_all_dead", op, retry=False)

    def _revive(self, conn: psycopg.Connection[Any], name: str, params: dict[str, Any]) -> Any:
        """Run a requeue statement; KeyHeldError (nothing requeued) when it would hold a
        key twice."""
        try:
            with conn.transaction():
                return self._one(conn, name, params)
        except psycopg.errors.UniqueViolation:
            pass
        queue = params["queue"]
        held = self._one(conn, "DEAD_KEY_HELD", params)
        if held is not None:
            raise key_held(queue, held[0], f"{self._tag}-{held[1]}")
        twice = self._one(conn, "DEAD_KEY_TWICE", params)
        raise key_held(queue, None if twice is None else twice[0], None)

    def purge(self, queue: str, *, dead_only: bool = False) -> int:
        name = "PURGE_DEAD" if dead_only else "PURGE"
        return int(self._count("purge", name, {"queue": queue}))

    def _count(self, what: str, name: str, params: dict[str, Any]) -> Any:
        return self._session.run(what, lambda conn: self._one(conn, name, params)[0], retry=False)

    # -- reading -----------------------------------------------------------------------

    def get(self, queue: str, message_id: str) -> Row | None:
        def op(conn: psycopg.Connection[Any]) -> Row | None:
            seq = self._seq(message_id)
            raw = None if seq is None else self._one(conn, "GET", {"seq": seq, "queue": queue})
            return None if raw is None else self._row(raw)

        return self._session.run("get", op)

    def dead_letters(self, queue: str, limit: int | None = None) -> list[Row]:
        def op(conn: psycopg.Connection[Any]) -> list[Row]:
            params = {"queue": queue, "limit": limit}
            return [self._row(raw) for raw in conn.execute(self._sql["DEAD_LETTERS"], params)]

        return self._session.run("dead_letters", op)

    def stats(self, queue: str) -> QueueStats:
        def op(conn: psycopg.Connection[Any]) -> QueueStats:
            ready, delayed, inflight, dead = self._one(conn, "STATS", {"queue": queue})
            return QueueStats(ready=ready, delayed=delayed, inflight=inflight, dead=dead)

        return self._session.run("stats", op)

    def queues(self) -> dict[str, QueueStats]:
        def op(conn: psycopg.Connection[Any]) -> dict[str, QueueStats]:
            rows = conn.execute(self._sql["QUEUES"]).fetchall()
            return {name: QueueStats(*counts) for name, *counts in sorted(rows)}

        return self._session.run("queues", op)

    def peek(self, queue: str, *, state: str | None = None, limit: int | None = None) -> list[Row]:
        if state is not None and state not in PEEK_STATES:
            raise ValueError(f"state must be one of {', '.join(PEEK_STATES)}, got {state!r}")

        def op(conn: psycopg.Connection[Any]) -> list[Row]:
            params = {"queue": queue, "state": state, "limit": limit}
            return [self._row(raw) for raw in conn.execute(self._sql["PEEK"], params)]

        return self._session.run("peek", op)

    def delete(self, queue: str, message_ids: Sequence[str]) -> int:
        ids = list(dict.fromkeys(message_ids))
        seqs = {message_id: self._seq(message_id) for message_id in ids}

        def op(conn: psycopg.Connection[Any]) -> int:
            wanted = [seq for seq in seqs.values() if seq is not None]
            with conn.transaction():
                params = {"queue": queue, "seqs": wanted}
                deleted = {seq for (seq,) in conn.execute(self._sql["DELETE_MANY"], params)}
                missing = [i for i, seq in seqs.items() if seq is None or seq not in deleted]
                if missing:  # rolls the transaction back: nothing is deleted
                    raise MessageNotFoundError(
                        f"no message {', '.join(map(repr, missing))} in queue {queue!r}"
                    )
            return len(ids)

        return self._session.run("delete", op, retry=False)

    def exists(self) -> bool:
        """Whether the schema holds a queue store already, found without creating one
        (every other operation creates the schema on first use)."""
        table = self._session.render("{m}").decode()

        def op(conn: psycopg.Connection[Any]) -> bool:
            row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
            return bool(row and row[0])

        return self._session.run("exists", op, bootstrap=False)

    def known_queues(self) -> list[str]:
        def op(conn: psycopg.Connection[Any]) -> list[str]:
            return [name for (name,) in conn.execute(self._sql["KNOWN_QUEUES"])]

        return self._session.run("known_queues", op)

    def settings(self, queue: str) -> QueueSettings:
        def op(conn: psycopg.Connection[Any]) -> QueueSettings:
            found = self._one(conn, "SETTINGS", {"queue": queue})
            return QueueSettings() if found is None else QueueSettings(*found)

        return self._session.run("settings", op)

    def set_paused(self, queue: str, paused: bool) -> QueueSettings:
        params = {"queue": queue, "paused": paused, "channel": self.channel}

        def op(conn: psycopg.Connection[Any]) -> QueueSettings:
            return QueueSettings(*self._one(conn, "SET_PAUSED", params)[:-1])

        return self._session.run("set_paused", op)

    def set_limits(self, queue: str, limits: Mapping[str, int | float | None]) -> QueueSettings:
        wanted = merged_limits(QueueSettings(), limits)  # ValueError before any change
        params: dict[str, Any] = {"queue": queue, "channel": self.channel}
        params.update(wanted._asdict())
        for name in ("max_inflight", "rate", "per_group"):
            params[f"set_{name}"] = name in limits

        def op(conn: psycopg.Connection[Any]) -> QueueSettings:
            return QueueSettings(*self._one(conn, "SET_LIMITS", params)[:-1])

        return self._session.run("set_limits", op)

    def _held_back(self, conn: psycopg.Connection[Any], queue: str) -> tuple[Any, ...]:
        """``hold``'s answer for ``queue`` now, then the waits until the rate lets the
        next lease start and until the earliest live lease ends (None: none)."""
        found = self._one(conn, "HELD_BACK", {"queue": queue})
        settings = QueueSettings() if found[0] is None else QueueSettings(*found[:5])
        ready, inflight, in_full_groups, rate_wait, lease_wait = found[5:]
        rate_full = rate_wait is not None and rate_wait > 0
        held = hold(
            settings,
            ready=ready,
            inflight=inflight,
            rate_full=rate_full,
            in_full_groups=in_full_groups,
        )
        return held, ready, rate_wait if rate_full else None, lease_wait

    def held_back(self, queue: str) -> tuple[str | None, int]:
        def op(conn: psycopg.Connection[Any]) -> tuple[str | None, int]:
            held: tuple[str | None, int] = self._held_back(conn, queue)[0]
            return held

        return self._session.run("held_back", op)

    def next_visible_in(self, queue: str) -> float | None:
        def op(conn: psycopg.Connection[Any]) -> float | None:
            due, limited = self._one(conn, "NEXT_VISIBLE_IN", {"queue": queue})
            if due is None or due > 0 or not limited:
                return None if due is None else max(0.0, float(due))
            # Visible now, in a queue with limits: held back by them?
            (reason, count), ready, rate_wait, lease_wait = self._held_back(conn, queue)
            if reason is None or (reason == "per_group" and count < ready):
                return 0.0
            wait = rate_wait if rate_wait is not None else lease_wait
            return None if wait is None else max(0.0, float(wait))

        return self._session.run("next_visible_in", op)

    def clock(self) -> float:
        """Seconds since the epoch on the server's clock (what leases are measured by)."""
        return float(self._session.run("clock", lambda conn: self._one(conn, "CLOCK", {})[0]))

    # -- history -----------------------------------------------------------------------

    def keep(self, queue: str, *, seconds: float | None, count: int | None) -> None:
        params = {"queue": queue, "seconds": seconds, "count": count}
        self._session.run("keep", lambda conn: conn.execute(self._sql["KEEP"], params))

    def retention(self, queue: str) -> tuple[float | None, int | None]:
        def op(conn: psycopg.Connection[Any]) -> tuple[float | None, int | None]:
            found = self._one(conn, "RETENTION", {"queue": queue})
            return (None, None) if found is None else (found[0], found[1])

        return self._session.run("retention", op)

    def history(
        self,
        queue: str,
        *,
        status: str | None = None,
        since: float | None = None,
        key: str | None = None,
        limit: int | None = None,
    ) -> list[HistoryRow]:
        params = {"queue": queue, "status": status, "since": since, "key": key}
        params["limit"] = limit or None

        def op(conn: psycopg.Connection[Any]) -> list[HistoryRow]:
            return [HistoryRow(*raw) for raw in conn.execute(self._sql["HISTORY"], params)]

        return self._session.run("history", op)

    def history_record(self, queue: str, message_id: str) -> HistoryRow | None:
        def op(conn: psycopg.Connection[Any]) -> HistoryRow | None:
            found = self._one(conn, "HISTORY_RECORD", {"queue": queue, "id": message_id})
            return None if found is None else HistoryRow(*found)

        return self._session.run("history_record", op)

    def prune_history(self, queue: str) -> int:
        return int(self._count("prune", "PRUNE_HISTORY", {"queue": queue, "batch": PRUNE_BATCH}))

    def history_queues(self) -> list[str]:
        def op(conn: psycopg.Connection[Any]) -> list[str]:
            return [name for (name,) in conn.execute(self._sql["KEEPING_QUEUES"])]

        return self._session.run("history_queues", op)

    # -- waiting and lifetime ----------------------------------------------------------

    def wait(self, queue: str, timeout: float) -> None:
        """Block until a NOTIFY says something was put (or released, or requeued) to
        ``queue``, or ``timeout`` seconds pass. A background thread LISTENs from the
        first call on; until it does (or while the server is unreachable) this just
        sleeps. Spurious wake-ups happen."""
        self._listener.wait(queue, timeout)

    def listen(self) -> None:
        """Start listening now and return once LISTEN is active, so that a put from now
        on wakes the next :meth:`wait` (which otherwise starts listening itself)."""
        self._listener.listen(self._session.connect_timeout)

    def close(self) -> None:
        """Close the connection and stop the listening thread (a later call reopens)."""
        self._listener.close()
        self._session.close()

    def drop_schema(self) -> None:
        """DROP SCHEMA ... CASCADE: every message (and any attempt store sharing the
        schema) is gone. Meant for tests and teardown."""
        self._session.drop_schema()
