"""SQL of the PostgreSQL queue store, as templates (``{m}`` is the messages table,
``{meta}`` the meta table, ``{schema}`` the schema; ``%(name)s`` are parameters).

Every timestamp comes from the server: ``t.now`` is ``now()`` (the transaction's start)
as epoch seconds. ``visible_at`` is when a live message can next be leased: its
``available_at`` when it waits, its ``lease_expires_at`` while inflight. Statements that
make a message leasable NOTIFY in the same statement when anyone listens, so a waiting
worker wakes as soon as the change commits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

SCHEMA_VERSION = 6

# Every queue name the schema has held, also after its last message is gone (version
# 2): a statement-level trigger records the names each INSERT into the messages brings.
_KNOWN_QUEUES_DDL = (
    "CREATE TABLE {q} (name text PRIMARY KEY)",
    """CREATE FUNCTION {schema}.remember_queues() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO {q} (name) SELECT DISTINCT queue FROM new_rows ON CONFLICT DO NOTHING;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER messages_queue_known AFTER INSERT ON {m}
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION {schema}.remember_queues()""",
)

# Version 3 (issue 26): priorities and keys. The live messages are indexed highest
# priority first; a key is held by at most one live (not dead) message of its queue.
_PRIORITY_INDEX = (
    "CREATE INDEX messages_visible_idx ON {m} (queue, priority DESC, visible_at, seq)"
    " WHERE NOT dead"
)
_KEY_HOLDERS = "key IS NOT NULL AND NOT dead"
_KEY_INDEX = f"CREATE UNIQUE INDEX messages_key_idx ON {{m}} (queue, key) WHERE {_KEY_HOLDERS}"

# Version 4 (issue 27): the settings of the queues that were given any; every lease
# statement reads its queue's row in its own query (no extra round trip).
_SETTINGS_DDL = """CREATE TABLE {s} (
        queue text PRIMARY KEY,
        paused boolean NOT NULL DEFAULT false
    )"""
_PAUSED = "EXISTS (SELECT FROM {s} WHERE queue = %(queue)s AND paused)"
# Whether the queue limits its inflight messages (version 6): a worker's settle frees
# a slot and NOTIFYs (SETTLE_MANY; a single ack or dead letter does not, to stay as cheap
# as before: a consumer waiting in ``get_message`` polls anyway).
_SLOTS = (
    "EXISTS (SELECT FROM {s} WHERE queue = %(queue)s"
    " AND (max_inflight IS NOT NULL OR per_group IS NOT NULL))"
)

# Version 5 (issue 28): a queue's retention (keep columns in its settings row), and the
# history of finished messages (one record each, written by the statement that acks or
# dead-letters the message).
_HISTORY_DDL = (
    "ALTER TABLE {s} ADD COLUMN keep_seconds float8",
    "ALTER TABLE {s} ADD COLUMN keep_count bigint",
    """CREATE TABLE {h} (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        queue text NOT NULL,
        id text NOT NULL,
        key text,
        value bytea NOT NULL,
        status text NOT NULL,
        attempts integer NOT NULL,
        enqueued_at float8 NOT NULL,
        first_started_at float8,
        finished_at float8 NOT NULL,
        duration float8,
        worker text,
        exit_code integer,
        error bytea,
        errors bytea,
        output bytea
    )""",
    "CREATE INDEX history_finished_idx ON {h} (queue, finished_at, seq)",
    "CREATE INDEX history_id_idx ON {h} (id)",
)
_MESSAGE_HISTORY_COLUMNS = (
    "ALTER TABLE {m} ADD COLUMN first_started_at float8",
    "ALTER TABLE {m} ADD COLUMN errors bytea",  # a JSON array, while a history is kept
)

# Version 6 (issue 27, the rest): limits and groups. A message's group (``grp``: "group"
# is reserved); the queue's limits in its settings row, with ``rate_next``: when a queue
# with a rate may start its next lease (localqueue.limits.next_due), moved on by the
# limited lease statement; and an index of the leased messages, which the limited lease
# statements count (per queue and per group) among the live ones.
_LIMITS_DDL = (
    "ALTER TABLE {m} ADD COLUMN grp text",
    "ALTER TABLE {s} ADD COLUMN max_inflight bigint",
    "ALTER TABLE {s} ADD COLUMN rate bigint",
    "ALTER TABLE {s} ADD COLUMN rate_period float8",
    "ALTER TABLE {s} ADD COLUMN per_group bigint",
    "ALTER TABLE {s} ADD COLUMN rate_next float8",
    # leased_at is set exactly while a message is inflight; a predicate on it rather
    # than on ``inflight`` keeps the fenced statements (``m.inflight AND m.seq = ...``)
    # on the primary key instead of scanning the queue's leases.
    "CREATE INDEX messages_leased_idx ON {m} (queue, grp) WHERE leased_at IS NOT NULL",
)

CREATE = (
    """CREATE TABLE {m} (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        queue text NOT NULL,
        value bytea NOT NULL,
        dead boolean NOT NULL DEFAULT false,
        inflight boolean NOT NULL DEFAULT false,
        attempts integer NOT NULL DEFAULT 0,
        enqueued_at float8 NOT NULL,
        available_at float8,
        visible_at float8 NOT NULL,
        leased_at float8,
        lease_expires_at float8,
        leased_by text,
        lease_token text,
        last_error bytea,
        failed_at float8,
        dead_at float8,
        priority bigint NOT NULL DEFAULT 0,
        key text
    )""",
    _PRIORITY_INDEX,
    "CREATE INDEX messages_dead_idx ON {m} (queue, dead_at, seq) WHERE dead",
    _KEY_INDEX,
    *_KNOWN_QUEUES_DDL,
    _SETTINGS_DDL,
    *_MESSAGE_HISTORY_COLUMNS,
    *_HISTORY_DDL,
    *_LIMITS_DDL,
)

# Every step: the statements that take schema version N to N + 1 (docs/schema.md).
MIGRATIONS: dict[int, Sequence[str]] = {
    1: (
        *_KNOWN_QUEUES_DDL,
        "INSERT INTO {q} (name) SELECT DISTINCT queue FROM {m} ON CONFLICT DO NOTHING",
    ),
    2: (  # a message of an older schema has priority 0 and no key
        "ALTER TABLE {m} ADD COLUMN priority bigint NOT NULL DEFAULT 0",
        "ALTER TABLE {m} ADD COLUMN key text",
        "DROP INDEX {schema}.messages_visible_idx",
        _PRIORITY_INDEX,
        _KEY_INDEX,
    ),
    3: (_SETTINGS_DDL,),  # no queue of an older schema has settings
    4: (*_MESSAGE_HISTORY_COLUMNS, *_HISTORY_DDL),  # an older message: no first start, errors
    5: _LIMITS_DDL,  # an older message has no group; an older queue no limits
}

KNOWN_QUEUES = "SELECT name FROM {q} ORDER BY name"

_NOW = "extract(epoch FROM now())::float8"
# The limited lease statements read the clock after the lease lock is theirs (the
# transaction's now() is older: from before the wait).
_CLOCK_NOW = "extract(epoch FROM clock_timestamp())::float8"
_T = f"(SELECT {_NOW} AS now) AS t"
_STATE = (
    "CASE WHEN m.dead THEN 'dead' WHEN m.visible_at <= t.now THEN 'ready' "
    "WHEN m.inflight THEN 'inflight' ELSE 'delayed' END"
)
# ROW_FIELDS order; the first column is the seq, which the store turns into the id.
_COLS = (
    f"m.seq, m.queue, m.value, {_STATE}, m.attempts, m.enqueued_at, m.available_at, "
    "m.leased_at, m.lease_expires_at, m.leased_by, m.lease_token, m.last_error, "
    "m.failed_at, m.dead_at, m.key, m.priority, m.grp"
)
_HELD = (
    "m.seq = %(seq)s AND m.queue = %(queue)s AND m.inflight "
    "AND (%(token)s::text IS NULL OR m.lease_token = %(token)s::text)"
)
# NOTIFY only when someone may listen. Every listener holds a shared advisory lock on
# each of the channel's LISTEN_SLOTS keys (see _pg_listen) from before it first looks at
# the queue; a writer tries one of those keys exclusively (which slot: its backend pid):
# when it gets it, nobody listens, the NOTIFY (which serialises every notifying commit
# of the server) is skipped, and the key stays held until the commit, so a listener
# that arrives meanwhile waits for that commit and then finds the message itself.
LISTEN_SLOTS = 4
_NOBODY_LISTENS = (
    f"pg_try_advisory_xact_lock(hashtext(%(channel)s), mod(pg_backend_pid(), {LISTEN_SLOTS}))"
)
_NOTIFY = (
    "n AS (SELECT CASE WHEN EXISTS (SELECT FROM u) AND NOT "
    f"{_NOBODY_LISTENS} THEN pg_notify(%(channel)s, %(queue)s) END)"
)

# Leases and heartbeats commit without waiting for the WAL flush (synchronous_commit
# off for that transaction only): lost in a server crash, a lease just ends sooner and
# its message is delivered again, as the store contract allows (SQLite's "relaxed"
# commits are the same trade). Puts, acks, releases and dead letters stay durable.
_RELAXED = "(SELECT set_config('synchronous_commit', 'off', true)) AS relaxed"

LOCK_QUEUE = "SELECT pg_advisory_xact_lock(hashtext(%(lock)s))"
PENDING = "SELECT count(*) FROM {m} WHERE queue = %(queue)s AND NOT dead AND NOT inflight"

PUT = f"""WITH t AS MATERIALIZED (SELECT {_NOW} AS now),
u AS (
    INSERT INTO {{m}} (queue, value, enqueued_at, available_at, visible_at, priority, grp)
    SELECT %(queue)s, v.value, t.now, t.now + %(delay)s, t.now + %(delay)s, %(priority)s,
        v.grp
    FROM t, unnest(%(values)s::bytea[], %(groups)s::text[]) WITH ORDINALITY AS v(value, grp, ord)
    ORDER BY v.ord
    RETURNING *
),
{_NOTIFY}
SELECT {_COLS} FROM u AS m CROSS JOIN t CROSS JOIN n ORDER BY m.seq"""

# One value of a keyed put (the store runs one per value, in one transaction): the
# unique index on held keys decides; a concurrent put of the same key waits for the
# other transaction and then finds the key held. "skip" and "error" insert nothing for
# a held key (the store then reads its holder, KEY_HOLDER); "replace" gives a waiting
# holder the new value, priority and availability and leaves a leased one alone.
_PUT_KEYED = f"""WITH t AS MATERIALIZED (SELECT {_NOW} AS now),
u AS (
    INSERT INTO {{m}} AS m (queue, value, enqueued_at, available_at, visible_at, priority, key,
        grp)
    SELECT %(queue)s, %(value)s, t.now, t.now + %(delay)s, t.now + %(delay)s, %(priority)s,
        %(key)s, %(grp)s
    FROM t
    ON CONFLICT (queue, key) WHERE {_KEY_HOLDERS} {{conflict}}
    RETURNING m.*
),
{_NOTIFY}
SELECT {_COLS} FROM u AS m CROSS JOIN t CROSS JOIN n"""
PUT_KEYED = _PUT_KEYED.replace("{conflict}", "DO NOTHING")
PUT_REPLACING = _PUT_KEYED.replace(
    "{conflict}",
    """DO UPDATE SET value = excluded.value, priority = excluded.priority,
        available_at = excluded.available_at, visible_at = excluded.visible_at,
        grp = excluded.grp
        WHERE NOT m.inflight""",
)
KEY_HOLDER = f"""SELECT {_COLS} FROM {{m}} AS m, {_T}
WHERE m.queue = %(queue)s AND m.key = %(key)s AND NOT m.dead"""
# Why a requeue broke the key index: a dead letter whose key a live message holds.
DEAD_KEY_HELD = """SELECT d.key, h.seq FROM {m} AS d JOIN {m} AS h
    ON h.queue = d.queue AND h.key = d.key AND NOT h.dead
    WHERE d.queue = %(queue)s AND d.dead AND (%(seq)s::bigint IS NULL OR d.seq = %(seq)s)
    LIMIT 1"""
DEAD_KEY_TWICE = """SELECT key FROM {m} WHERE queue = %(queue)s AND dead AND key IS NOT NULL
    GROUP BY key HAVING count(*) > 1 LIMIT 1"""

# Limits (version 6). The lock-free lease statements (LEASE, LEASE_MANY, SETTLE_MANY)
# lease nothing from a paused queue or one with limits, and say in their first column
# whether the queue has limits: the store then leases from it with the *_LIMITED
# statements, each run after LOCK_LEASES in one transaction (one round trip, pipelined),
# so that the counts of one are taken after the previous holder's leases committed.
_LIMITED = "max_inflight IS NOT NULL OR rate IS NOT NULL OR per_group IS NOT NULL"
_CFG = f"""cfg AS MATERIALIZED (
    SELECT paused, {_LIMITED} AS limited FROM {{s}} WHERE queue = %(queue)s
)"""
_HAS_LIMITS = "EXISTS (SELECT FROM cfg WHERE limited)"

LEASE = f"""WITH t AS MATERIALIZED (SELECT {_NOW} AS now), {_CFG},
u AS (
    UPDATE {{m}} AS m
    SET inflight = true, attempts = m.attempts + 1, leased_at = t.now,
        lease_expires_at = t.now + %(timeout)s, visible_at = t.now + %(timeout)s,
        leased_by = %(by)s, lease_token = %(token)s,
        first_started_at = coalesce(m.first_started_at, t.now)
    FROM t
    WHERE m.seq = (
        SELECT c.seq FROM {{m}} AS c
        WHERE c.queue = %(queue)s AND NOT c.dead AND c.visible_at <= {_NOW}
            AND NOT EXISTS (SELECT FROM cfg WHERE paused OR limited)
        ORDER BY c.priority DESC, c.visible_at, c.seq
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    )
    RETURNING m.*
)
SELECT {_HAS_LIMITS}, {_COLS} FROM t CROSS JOIN {_RELAXED} LEFT JOIN u AS m ON true"""

# The advisory lock every lease of a queue with limits takes first, in its transaction.
LOCK_LEASES = "SELECT pg_advisory_xact_lock(hashtext(%(lease_lock)s))"

# History (version 5). _KEEP: the queue's retention while it is on (else no row).
_KEEP = """keep AS MATERIALIZED (SELECT keep_seconds, keep_count FROM {s}
    WHERE queue = %(queue)s AND (keep_seconds IS NOT NULL OR keep_count IS NOT NULL))"""


def _append_error(errors: str, error: str) -> str:
    """The JSON array ``errors`` (bytea, NULL: empty) with ``error`` appended, while the
    queue keeps a history (else ``errors`` unchanged)."""
    return f"""CASE WHEN {error} IS NULL OR NOT EXISTS (SELECT FROM keep) THEN {errors}
        WHEN {errors} IS NULL THEN '\\x5b'::bytea || {error} || '\\x5d'::bytea
        ELSE substring({errors} FROM 1 FOR length({errors}) - 1) || '\\x2c'::bytea
            || {error} || '\\x5d'::bytea END"""


_HISTORY_COLS = """queue, id, key, value, status, attempts, enqueued_at, first_started_at,
    finished_at, duration, worker, exit_code, error, errors, output"""
# The record of each finished message in ``f`` (its row as it was held, ``status``,
# ``error``, ``duration``, ``exit_code``, ``output``), while the queue keeps a history.
_RECORD = f"""recorded AS (
    INSERT INTO {{h}} ({_HISTORY_COLS})
    SELECT f.queue, %(tag)s || '-' || f.seq, f.key, f.value, f.status, f.attempts,
        f.enqueued_at, f.first_started_at, t.now, f.duration, f.leased_by, f.exit_code,
        CASE WHEN f.status = 'dead' THEN coalesce(f.error, f.last_error) END,
        f.errors, f.output
    FROM f, t WHERE EXISTS (SELECT FROM keep)
)"""
# Pruning, at most a batch per statement, past the age and past the count, when the store
# asks (%(prune)s: every 50 records a store writes, see postgres._PRUNE_EVERY).
_PRUNE = """pruned_age AS (
    DELETE FROM {h} WHERE %(prune)s AND seq IN (SELECT h.seq FROM {h} AS h, keep, t
        WHERE h.queue = %(queue)s AND h.finished_at < t.now - keep.keep_seconds
        ORDER BY h.finished_at LIMIT %(batch)s)
),
pruned_count AS (
    DELETE FROM {h} WHERE %(prune)s AND seq IN (SELECT h.seq FROM {h} AS h
        WHERE h.queue = %(queue)s
            AND EXISTS (SELECT FROM keep WHERE keep_count IS NOT NULL)
        ORDER BY h.finished_at DESC, h.seq DESC
        OFFSET (SELECT keep_count FROM keep) LIMIT %(batch)s)
)"""

ACK = f"""WITH t AS MATERIALIZED (SELECT {_NOW} AS now), {_KEEP},
d AS (DELETE FROM {{m}} AS m WHERE {_HELD} RETURNING m.*),
f AS (SELECT d.*, 'acked' AS status, NULL::bytea AS error, NULL::float8 AS duration,
    NULL::integer AS exit_code, NULL::bytea AS output FROM d),
{_RECORD},
{_PRUNE}
SELECT seq FROM d"""

# Why a settle statement matched nothing: the message's inflight flag, or no row.
PROBE = "SELECT inflight FROM {m} WHERE seq = %(seq)s AND queue = %(queue)s"

_CLEAR_LEASE = "leased_at = NULL, lease_expires_at = NULL, leased_by = NULL, lease_token = NULL"
_SET_ERROR = (
    "last_error = coalesce(%(error)s::bytea, m.last_error), "
    "failed_at = CASE WHEN %(error)s::bytea IS NULL THEN m.failed_at ELSE t.now END"
)

RELEASE = f"""WITH t AS MATERIALIZED (SELECT {_NOW} AS now), {_KEEP},
u AS (
    UPDATE {{m}} AS m
    SET inflight = false, available_at = t.now + %(delay)s, visible_at = t.now + %(delay)s,
        {_CLEAR_LEASE}, {_SET_ERROR},
        errors = {_append_error("m.errors", "%(error)s::bytea")}
    FROM t WHERE {_HELD}
    RETURNING m.*
),
{_NOTIFY}
SELECT {_COLS} FROM u AS m CROSS JOIN t CROSS JOIN n"""

# The record takes the holder from the row as the statement found it (``held``).
DEAD_LETTER = f"""WITH t AS MATERIALIZED (SELECT {_NOW} AS now), {_KEEP},
held AS (SELECT m.seq, m.leased_by FROM {{m}} AS m WHERE {_HELD}),
u AS (
    UPDATE {{m}} AS m
    SET inflight = false, dead = true, dead_at = t.now, {_CLEAR_LEASE}, {_SET_ERROR},
        errors = {_append_error("m.errors", "%(error)s::bytea")}
    FROM t WHERE {_HELD}
    RETURNING m.*
),
f AS (SELECT u.*, held.leased_by AS worker, 'dead' AS status, NULL::bytea AS error,
    NULL::float8 AS duration, NULL::integer AS exit_code, NULL::bytea AS output
    FROM u JOIN held ON held.seq = u.seq),
{_RECORD.replace("f.leased_by", "f.worker")},
{_PRUNE}
SELECT {_COLS} FROM u AS m CROSS JOIN t"""

EXTEND_LEASE = f"""UPDATE {{m}} AS m
SET lease_expires_at = t.now + %(seconds)s, visible_at = t.now + %(seconds)s
FROM {_T}, {_RELAXED} WHERE {_HELD}
RETURNING {_COLS}"""

_REVIVE = (
    "dead = false, dead_at = NULL, available_at = t.now + %(delay)s, visible_at = t.now + %(delay)s"
)

REQUEUE_DEAD = f"""WITH t AS MATERIALIZED (SELECT {_NOW} AS now),
u AS (
    UPDATE {{m}} AS m SET {_REVIVE}
    FROM t WHERE m.seq = %(seq)s AND m.queue = %(queue)s AND m.dead
    RETURNING m.*
),
{_NOTIFY}
SELECT {_COLS} FROM u AS m CROSS JOIN t CROSS JOIN n"""

REQUEUE_ALL_DEAD = f"""WITH t AS MATERIALIZED (SELECT {_NOW} AS now),
u AS (
    UPDATE {{m}} AS m SET {_REVIVE}
    FROM t WHERE m.queue = %(queue)s AND m.dead
    RETURNING m.seq
),
{_NOTIFY}
SELECT count(*) FROM u CROSS JOIN n"""

PURGE = """WITH d AS (DELETE FROM {m} WHERE queue = %(queue)s RETURNING 1)
SELECT count(*) FROM d"""

PURGE_DEAD = """WITH d AS (DELETE FROM {m} WHERE queue = %(queue)s AND dead RETURNING 1)
SELECT count(*) FROM d"""

GET = f"SELECT {_COLS} FROM {{m}} AS m, {_T} WHERE m.seq = %(seq)s AND m.queue = %(queue)s"

PEEK = f"""SELECT {_COLS} FROM {{m}} AS m, {_T}
WHERE m.queue = %(queue)s AND (%(state)s::text IS NULL OR {_STATE} = %(state)s::text)
ORDER BY m.priority DESC, m.seq
LIMIT %(limit)s"""

DELETE_MANY = "DELETE FROM {m} WHERE queue = %(queue)s AND seq = ANY(%(seqs)s) RETURNING seq"

DEAD_LETTERS = f"""SELECT {_COLS} FROM {{m}} AS m, {_T}
WHERE m.queue = %(queue)s AND m.dead
ORDER BY m.dead_at, m.seq
LIMIT %(limit)s"""

# ready, delayed, inflight, dead
STATS = f"""SELECT
    count(*) FILTER (WHERE m.visible_at <= t.now),
    count(*) FILTER (WHERE m.visible_at > t.now AND NOT m.inflight),
    count(*) FILTER (WHERE m.visible_at > t.now AND m.inflight),
    (SELECT count(*) FROM {{m}} AS d WHERE d.queue = %(queue)s AND d.dead)
FROM {{m}} AS m, {_T}
WHERE m.queue = %(queue)s AND NOT m.dead"""

QUEUES = f"""SELECT m.queue,
    count(*) FILTER (WHERE NOT m.dead AND m.visible_at <= t.now),
    count(*) FILTER (WHERE NOT m.dead AND m.visible_at > t.now AND NOT m.inflight),
    count(*) FILTER (WHERE NOT m.dead AND m.visible_at > t.now AND m.inflight),
    count(*) FILTER (WHERE m.dead)
FROM {{m}} AS m, {_T}
GROUP BY m.queue"""

# The wait for the earliest visibility, and whether the queue has limits (then, when
# something is visible, the store asks HELD_BACK whether they hold it back).
NEXT_VISIBLE_IN = f"""SELECT (SELECT min(visible_at) FROM {{m}}
    WHERE queue = %(queue)s AND NOT dead AND NOT {_PAUSED}) - {_NOW},
    EXISTS (SELECT FROM {{s}} WHERE queue = %(queue)s AND ({_LIMITED}))"""

_SETTINGS = "paused, max_inflight, rate, rate_period, per_group"
SETTINGS = f"SELECT {_SETTINGS} FROM {{s}} WHERE queue = %(queue)s"
# Resuming wakes the queue's waiters (they lease at once).
SET_PAUSED = f"""WITH u AS (
    INSERT INTO {{s}} (queue, paused) VALUES (%(queue)s, %(paused)s)
    ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused
    RETURNING {_SETTINGS}
)
SELECT u.*, CASE WHEN NOT u.paused THEN pg_notify(%(channel)s, %(queue)s) END FROM u"""
# The limits %(set_...)s names, the others kept; a rate set anew starts its pacing
# afresh. Waiters wake (a lifted limit lets them lease).
SET_LIMITS = f"""WITH u AS (
    INSERT INTO {{s}} AS s (queue, max_inflight, rate, rate_period, per_group)
    VALUES (%(queue)s, %(max_inflight)s, %(rate)s, %(rate_period)s, %(per_group)s)
    ON CONFLICT (queue) DO UPDATE SET
        max_inflight = CASE WHEN %(set_max_inflight)s THEN excluded.max_inflight
            ELSE s.max_inflight END,
        rate = CASE WHEN %(set_rate)s THEN excluded.rate ELSE s.rate END,
        rate_period = CASE WHEN %(set_rate)s THEN excluded.rate_period ELSE s.rate_period END,
        per_group = CASE WHEN %(set_per_group)s THEN excluded.per_group ELSE s.per_group END,
        rate_next = CASE WHEN %(set_rate)s THEN NULL ELSE s.rate_next END
    RETURNING {_SETTINGS}
)
SELECT u.*, pg_notify(%(channel)s, %(queue)s) FROM u"""
# The settings (NULLs: none) and the counts of ``base.hold``: ready messages, live
# leases, ready messages of full groups; then the waits until the rate lets the next
# lease start and until the earliest live lease ends.
HELD_BACK = f"""WITH t AS MATERIALIZED (SELECT {_NOW} AS now),
cfg AS MATERIALIZED (SELECT {_SETTINGS}, rate_next FROM {{s}} WHERE queue = %(queue)s),
ready AS MATERIALIZED (
    SELECT c.grp FROM {{m}} AS c, t
    WHERE c.queue = %(queue)s AND NOT c.dead AND c.visible_at <= t.now
),
live AS MATERIALIZED (
    SELECT c.grp, c.visible_at FROM {{m}} AS c, t
    WHERE c.queue = %(queue)s AND c.leased_at IS NOT NULL AND c.visible_at > t.now
),
full_groups AS (
    SELECT live.grp FROM live, cfg WHERE live.grp IS NOT NULL
    GROUP BY live.grp, cfg.per_group HAVING count(*) >= cfg.per_group
)
SELECT cfg.paused, cfg.max_inflight, cfg.rate, cfg.rate_period, cfg.per_group,
    (SELECT count(*) FROM ready), (SELECT count(*) FROM live),
    (SELECT count(*) FROM ready WHERE ready.grp IN (SELECT full_groups.grp FROM full_groups)),
    CASE WHEN cfg.rate IS NOT NULL THEN cfg.rate_next - t.now END,
    (SELECT min(visible_at) FROM live) - t.now
FROM t LEFT JOIN cfg ON true"""
CLOCK = "SELECT extract(epoch FROM clock_timestamp())::float8"

# -- batches: one statement each (one round trip, one commit) ---------------------------

# The held message of settlement ``s`` (as _HELD, per row of the unnested settlements).
_HELD_S = (
    "m.seq = s.seq AND m.queue = %(queue)s AND m.inflight "
    "AND (s.token IS NULL OR m.lease_token = s.token)"
)

# Up to %(lease)s visible messages, locked (others skip them), numbered in lease order;
# %(held)s are the seqs being settled in the same statement, left alone.
_LEASING = f"""numbered AS (
    SELECT cand.seq,
        row_number() OVER (ORDER BY cand.priority DESC, cand.visible_at, cand.seq) AS k
    FROM cand
),
leased AS (
    UPDATE {{m}} AS m
    SET inflight = true, attempts = m.attempts + 1, leased_at = t.now,
        lease_expires_at = t.now + %(timeout)s, visible_at = t.now + %(timeout)s,
        leased_by = %(by)s, lease_token = (%(tokens)s::text[])[numbered.k],
        first_started_at = coalesce(m.first_started_at, t.now)
    FROM numbered, t WHERE m.seq = numbered.seq
    RETURNING numbered.k, {_COLS}
)"""

_LEASE_CTES = f"""{_CFG},
cand AS MATERIALIZED (
    SELECT c.seq, c.priority, c.visible_at FROM {{m}} AS c
    WHERE c.queue = %(queue)s AND NOT c.dead AND c.visible_at <= {_NOW}
        AND NOT (c.seq = ANY(%(held)s::bigint[]))
        AND NOT EXISTS (SELECT FROM cfg WHERE paused OR limited)
    ORDER BY c.priority DESC, c.visible_at, c.seq
    LIMIT %(lease)s
    FOR UPDATE SKIP LOCKED
),
{_LEASING}"""

# Up to %(lease)s messages of a queue with limits, as many as its limits allow now:
# ``live`` are its live leases (but those the same statement settles, ``{freeing}``),
# ``busy`` its groups' counts of them; ``room`` how many to lease (with a rate: one, once
# ``rate_next`` is past). A queue with per_group looks at a bounded stretch of its
# visible messages of groups that are not full, in lease order, and leases from each
# group only what it has room for (a stretch crowded by one group leases fewer, and
# that group is full afterwards). A lease of a queue with a rate moves its ``rate_next``
# on by period / rate.
_LIMITED_LEASE_CTES = f"""cfg AS MATERIALIZED (
    SELECT paused, max_inflight, rate, rate_period, per_group, rate_next, {_LIMITED} AS limited
    FROM {{s}} WHERE queue = %(queue)s
),
live AS MATERIALIZED (
    SELECT c.grp FROM {{m}} AS c, t
    WHERE c.queue = %(queue)s AND c.leased_at IS NOT NULL AND c.visible_at > t.now
        AND c.seq NOT IN ({{freeing}})
),
busy AS MATERIALIZED (
    SELECT live.grp, count(*) AS n FROM live WHERE live.grp IS NOT NULL GROUP BY live.grp
),
room AS MATERIALIZED (
    SELECT CASE WHEN coalesce(cfg.paused, false) THEN 0 ELSE greatest(0, least(
        %(lease)s::bigint,
        cfg.max_inflight - (SELECT count(*) FROM live),
        CASE WHEN cfg.rate IS NULL THEN NULL
            WHEN t.now < coalesce(cfg.rate_next, 0) THEN 0 ELSE 1 END
    )) END AS n, cfg.per_group
    FROM t LEFT JOIN cfg ON true
),
scan AS MATERIALIZED (
    SELECT c.seq, c.priority, c.visible_at, c.grp FROM {{m}} AS c, t
    WHERE c.queue = %(queue)s AND NOT c.dead AND c.visible_at <= t.now
        AND NOT (c.seq = ANY(%(held)s::bigint[]))
        AND (c.grp IS NULL OR NOT EXISTS (
            SELECT FROM busy, room WHERE busy.grp = c.grp AND busy.n >= room.per_group))
    ORDER BY c.priority DESC, c.visible_at, c.seq
    LIMIT (SELECT CASE WHEN per_group IS NULL THEN n ELSE n * 8 + 100 END FROM room)
),
picked AS (
    SELECT r.seq FROM (
        SELECT scan.*, row_number() OVER (
            PARTITION BY scan.grp ORDER BY scan.priority DESC, scan.visible_at, scan.seq
        ) AS nth
        FROM scan
    ) AS r, room
    WHERE r.grp IS NULL OR room.per_group IS NULL
        OR r.nth <= room.per_group - coalesce((SELECT busy.n FROM busy WHERE busy.grp = r.grp), 0)
    ORDER BY r.priority DESC, r.visible_at, r.seq
    LIMIT (SELECT n FROM room)
),
cand AS MATERIALIZED (
    SELECT c.seq, c.priority, c.visible_at FROM {{m}} AS c, t
    WHERE c.seq IN (SELECT picked.seq FROM picked) AND NOT c.dead AND c.visible_at <= t.now
    FOR UPDATE OF c SKIP LOCKED
),
{_LEASING},
paced AS (
    UPDATE {{s}} AS s
    SET rate_next = greatest(coalesce(s.rate_next, 0), t.now) + s.rate_period / s.rate
    FROM t WHERE s.queue = %(queue)s AND s.rate IS NOT NULL AND EXISTS (SELECT FROM leased)
)"""


LEASE_MANY = f"""WITH t AS MATERIALIZED (SELECT {_NOW} AS now),
{_LEASE_CTES}
SELECT {_HAS_LIMITS}, l.* FROM {_RELAXED} LEFT JOIN leased AS l ON true ORDER BY l.k"""

LEASE_MANY_LIMITED = f"""WITH t AS MATERIALIZED (SELECT {_CLOCK_NOW} AS now),
{_LIMITED_LEASE_CTES.replace("{freeing}", "SELECT NULL::bigint WHERE false")}
SELECT {_HAS_LIMITS}, l.* FROM {_RELAXED} LEFT JOIN leased AS l ON true ORDER BY l.k"""

# Settlements (unnested arrays, one element each), the values applied ones put on the
# next queue, and the next leases, in ONE statement. The first row carries the
# ordinals of the applied settlements; each row one leased message (NULLs when none).
_SETTLE_MANY = f"""WITH t AS MATERIALIZED (SELECT {{now}} AS now), {_KEEP},
s AS MATERIALIZED (
    SELECT * FROM unnest(
        %(seqs)s::bigint[], %(settle_tokens)s::text[], %(actions)s::text[],
        %(delays)s::float8[], %(errors)s::bytea[], %(durations)s::float8[],
        %(exit_codes)s::integer[], %(outputs)s::bytea[]
    ) WITH ORDINALITY AS s(seq, token, action, delay, error, duration, exit_code, output, ord)
),
held AS (SELECT m.seq, m.leased_by FROM {{m}} AS m JOIN s ON {_HELD_S}
    WHERE s.action = 'dead' AND EXISTS (SELECT FROM keep)),
acked AS (
    DELETE FROM {{m}} AS m USING s
    WHERE s.action = 'acked' AND {_HELD_S}
    RETURNING s.ord, m.*
),
settled AS (
    UPDATE {{m}} AS m
    SET inflight = false,
        dead = s.action = 'dead',
        dead_at = CASE WHEN s.action = 'dead' THEN t.now END,
        available_at = CASE WHEN s.action = 'dead' THEN m.available_at
            ELSE t.now + s.delay END,
        visible_at = CASE WHEN s.action = 'dead' THEN m.visible_at ELSE t.now + s.delay END,
        {_CLEAR_LEASE},
        last_error = coalesce(s.error, m.last_error),
        failed_at = CASE WHEN s.error IS NULL THEN m.failed_at ELSE t.now END,
        errors = {_append_error("m.errors", "s.error")}
    FROM s, t
    WHERE s.action <> 'acked' AND {_HELD_S}
    RETURNING s.ord, s.action, m.*
),
done AS (SELECT ord FROM acked UNION ALL SELECT ord FROM settled),
f AS (
    SELECT a.seq, a.queue, a.key, a.value, a.attempts, a.enqueued_at, a.first_started_at,
        a.leased_by, a.last_error, a.errors, 'acked' AS status, s.error, s.duration,
        s.exit_code, s.output
    FROM acked AS a JOIN s ON s.ord = a.ord
    UNION ALL
    SELECT d.seq, d.queue, d.key, d.value, d.attempts, d.enqueued_at, d.first_started_at,
        held.leased_by, d.last_error, d.errors, 'dead', s.error, s.duration, s.exit_code,
        s.output
    FROM settled AS d JOIN s ON s.ord = d.ord JOIN held ON held.seq = d.seq
    WHERE d.action = 'dead'
),
{_RECORD},
{_PRUNE},
p AS (
    SELECT * FROM unnest(%(put_ords)s::bigint[], %(put_queues)s::text[], %(put_values)s::bytea[])
        WITH ORDINALITY AS p(ord, queue, value, n)
),
ins AS (
    INSERT INTO {{m}} (queue, value, enqueued_at, available_at, visible_at)
    SELECT p.queue, p.value, t.now, t.now, t.now
    FROM p JOIN done ON done.ord = p.ord CROSS JOIN t
    ORDER BY p.n
    RETURNING queue
),
{{lease_ctes}},
wake AS (
    SELECT queue FROM ins
    UNION SELECT %(queue)s FROM settled WHERE settled.action = 'released'
    UNION SELECT %(queue)s FROM done WHERE {_SLOTS}
)
SELECT
    (SELECT array_agg(ord) FROM done) AS applied,
    (SELECT count(*) FROM (
        SELECT pg_notify(%(channel)s, w.queue) FROM wake AS w WHERE NOT {_NOBODY_LISTENS}
    ) AS x) AS woke,
    {_HAS_LIMITS} AS limited,
    l.*
FROM (SELECT 1) AS one LEFT JOIN leased AS l ON true
ORDER BY l.k"""
SETTLE_MANY = _SETTLE_MANY.replace("{now}", _NOW).replace("{lease_ctes}", _LEASE_CTES)
# The same under the queue's lease lock; the messages it acks, releases or dead-letters
# hold no slot of the leases it takes.
_SETTLED_HERE = "SELECT seq FROM acked UNION ALL SELECT seq FROM settled"
SETTLE_MANY_LIMITED = _SETTLE_MANY.replace("{now}", _CLOCK_NOW).replace(
    "{lease_ctes}", _LIMITED_LEASE_CTES.replace("{freeing}", _SETTLED_HERE)
)

EXTEND_LEASES = f"""WITH t AS MATERIALIZED (SELECT {_NOW} AS now),
s AS MATERIALIZED (
    SELECT * FROM unnest(%(seqs)s::bigint[], %(settle_tokens)s::text[])
        WITH ORDINALITY AS s(seq, token, ord)
)
UPDATE {{m}} AS m
SET lease_expires_at = t.now + %(seconds)s, visible_at = t.now + %(seconds)s
FROM s, t, {_RELAXED} WHERE {_HELD_S}
RETURNING s.ord, m.lease_expires_at"""

# -- history: settings, reads and pruning ----------------------------------------------

KEEP = """INSERT INTO {s} (queue, keep_seconds, keep_count)
    VALUES (%(queue)s, %(seconds)s, %(count)s)
    ON CONFLICT (queue) DO UPDATE SET keep_seconds = excluded.keep_seconds,
        keep_count = excluded.keep_count"""
RETENTION = "SELECT keep_seconds, keep_count FROM {s} WHERE queue = %(queue)s"
KEEPING_QUEUES = "SELECT queue FROM {s} ORDER BY queue"
_HISTORY_ROW = """id, queue, key, value, status, attempts, enqueued_at, first_started_at,
    finished_at, duration, worker, exit_code, error, errors, output"""
HISTORY = f"""SELECT {_HISTORY_ROW} FROM {{h}}
    WHERE queue = %(queue)s AND (%(since)s::float8 IS NULL OR finished_at >= %(since)s)
        AND (%(status)s::text IS NULL OR status = %(status)s)
        AND (%(key)s::text IS NULL OR key = %(key)s)
    ORDER BY finished_at DESC, seq DESC LIMIT %(limit)s"""
HISTORY_RECORD = f"SELECT {_HISTORY_ROW} FROM {{h}} WHERE id = %(id)s AND queue = %(queue)s"
# One batch past the retention (off: of every record), in its own short statement.
PRUNE_HISTORY = f"""WITH t AS MATERIALIZED (SELECT {_NOW} AS now),
r AS (SELECT keep_seconds, coalesce(keep_count, CASE WHEN keep_seconds IS NULL THEN 0 END)
        AS keep_count FROM {{s}} WHERE queue = %(queue)s),
doomed AS (
    (SELECT h.seq FROM {{h}} AS h, r, t WHERE h.queue = %(queue)s
        AND h.finished_at < t.now - r.keep_seconds ORDER BY h.finished_at LIMIT %(batch)s)
    UNION
    (SELECT h.seq FROM {{h}} AS h WHERE h.queue = %(queue)s
        AND EXISTS (SELECT FROM r WHERE r.keep_count IS NOT NULL)
        ORDER BY h.finished_at DESC, h.seq DESC
        OFFSET (SELECT keep_count FROM r) LIMIT %(batch)s)
),
d AS (DELETE FROM {{h}} WHERE seq IN (SELECT seq FROM doomed) RETURNING 1)
SELECT count(*) FROM d"""
