"""SQL of the SQLite queue store: its schema, migrations and statements, and the
read-only queries that shell completion answers a TAB with.

The state column holds the store contract's codes (:mod:`localqueue.stores.base`),
written as numbers in the SQL: WAITING 0 (ready or delayed, by ``visible_at``),
INFLIGHT 1, DEAD 2; and 3, a finished message: acked while its queue keeps a history,
it is its own history record (version 7; every statement about messages leaves it out).
:mod:`localqueue.stores.sqlite` runs the statements;
:mod:`localqueue.cli.complete` runs the completion queries over a connection of its own.
"""

from __future__ import annotations

import functools
import time

from localqueue.stores.base import DEAD, INFLIGHT

TYPE_CHECKING = False  # on the fast path (queue add, TAB): typing costs start-up time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Rows = Callable[[str, Any], list[Any]]

SCHEMA_VERSION = 7
APPLICATION_ID = 0x6C715131  # "lqQ1": marks a localqueue queue store

# Every queue name the store has held, also after its last message is gone (version 2).
# A trigger records it, so every statement that inserts messages does, in its own commit.
_KNOWN_QUEUES_SCHEMA = (
    "CREATE TABLE queues (name TEXT PRIMARY KEY) WITHOUT ROWID",
    """CREATE TRIGGER messages_queue_known AFTER INSERT ON messages
        BEGIN INSERT OR IGNORE INTO queues (name) VALUES (new.queue); END""",
)
KNOWN_QUEUES = "SELECT name FROM queues ORDER BY name"
# peek: the effective states (SQLiteQueueStore._row) as conditions on the stored ones
_IN_STATE = {
    None: "AND state < 3",
    "ready": "AND state < 2 AND visible_at <= :now",
    "delayed": "AND state = 0 AND visible_at > :now",
    "inflight": "AND state = 1 AND visible_at > :now",
    "dead": "AND state = 2",
}
# Version 3: the live messages by priority, then visibility time (then seq, the rowid).
# Every query that looks for the next message walks the queue's priority levels from the
# highest down (LEVELS: one index probe each), so delayed messages and live leases of a
# higher priority are stepped over, never scanned.
_VISIBLE_INDEX = (
    "CREATE INDEX messages_visible ON messages (queue, priority, visible_at) WHERE state < 2"
)
# A key is held while its message waits or is leased (state < 2): a dead letter keeps
# its key for the record but holds nothing, and an acked, deleted or purged one is gone.
_KEY_HOLDERS = "key IS NOT NULL AND state < 2"
_KEY_INDEX = f"CREATE UNIQUE INDEX messages_key ON messages (queue, key) WHERE {_KEY_HOLDERS}"
# Version 4 (issue 27): the settings of the queues that were given any; every lease reads
# its queue's row inside its own statement (a queue without one: a primary-key probe
# that finds nothing).
_SETTINGS_SCHEMA = """CREATE TABLE queue_settings (
        queue TEXT PRIMARY KEY,
        paused INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID"""
SETTINGS = """SELECT paused, max_inflight, rate, rate_period, per_group
    FROM queue_settings WHERE queue = ?"""
RATE_NEXT = "SELECT rate_next FROM queue_settings WHERE queue = ?"
SET_PAUSED = """INSERT INTO queue_settings (queue, paused) VALUES (:queue, :paused)
    ON CONFLICT (queue) DO UPDATE SET paused = excluded.paused RETURNING paused"""
DELETE_ONE = """DELETE FROM messages
    WHERE seq = :seq AND nonce = :nonce AND queue = :queue AND state < 3"""
# Version 5 (issue 28): retention, in the queue's settings row (keep finished messages
# for keep_seconds and/or the newest keep_count of them; both NULL or no row: keep none),
# and the history of finished messages, one record each, written by the settle
# transaction (version 7: an ack's is its message, finished in place; see
# _FINISHED_INDEX). Reads look at the history and the finished messages.
_KEEP_COLUMNS = (
    "ALTER TABLE queue_settings ADD COLUMN keep_seconds REAL",
    "ALTER TABLE queue_settings ADD COLUMN keep_count INTEGER",
)
# Version 6 (issue 27, the rest): limits, in the settings row, and groups. A message's
# group is in `grp`; `messages_group` serves the count of a group's leases (only grouped
# messages are in it, so a queue without groups pays nothing for it). A queue with a
# rate keeps in `rate_next` when its next lease may start (localqueue.limits.next_due),
# moved on by a trigger on each of its leases (attempts + 1).
_LIMIT_COLUMNS = (
    "ALTER TABLE queue_settings ADD COLUMN max_inflight INTEGER",
    "ALTER TABLE queue_settings ADD COLUMN rate INTEGER",
    "ALTER TABLE queue_settings ADD COLUMN rate_period REAL",
    "ALTER TABLE queue_settings ADD COLUMN per_group INTEGER",
    "ALTER TABLE queue_settings ADD COLUMN rate_next REAL",
)
_GROUPS_SCHEMA = (
    """CREATE INDEX messages_group ON messages (queue, grp, visible_at)
        WHERE state = 1 AND grp IS NOT NULL""",
)
# The trigger exists only while some queue of the store has a rate (set_limits creates
# and drops it, in its transaction): evaluating its WHEN on every lease cost 3-5% of
# get_ack at durability normal (interleaved runs, 5 rounds: 16.0k vs 16.7k/s).
ANY_RATE = "SELECT 1 FROM queue_settings WHERE rate IS NOT NULL LIMIT 1"
CREATE_RATE_TRIGGER = """CREATE TRIGGER IF NOT EXISTS messages_rate_next
    AFTER UPDATE OF attempts ON messages
    WHEN new.attempts > old.attempts AND EXISTS (SELECT 1 FROM queue_settings
        WHERE queue = new.queue AND rate IS NOT NULL)
    BEGIN
        UPDATE queue_settings
            SET rate_next = max(coalesce(rate_next, 0), new.leased_at) + rate_period / rate
            WHERE queue = new.queue;
    END"""
DROP_RATE_TRIGGER = "DROP TRIGGER IF EXISTS messages_rate_next"
_HISTORY_TABLE = """(
        seq INTEGER PRIMARY KEY,
        queue TEXT NOT NULL,
        id TEXT NOT NULL,
        key TEXT,
        value BLOB NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        enqueued_at REAL NOT NULL,
        first_started_at REAL,
        finished_at REAL NOT NULL,
        duration REAL,
        worker TEXT,
        exit_code INTEGER,
        error BLOB,
        errors BLOB,
        output BLOB
    )"""
_RECORD_COLUMNS = """queue, id, key, value, status, attempts, enqueued_at, first_started_at,
    finished_at, duration, worker, exit_code, error, errors, output"""
_HISTORY_SCHEMA = (
    f"CREATE TABLE history {_HISTORY_TABLE}",
    "CREATE INDEX history_finished ON history (queue, finished_at)",
    "CREATE INDEX history_id ON history (id)",
)
# Version 6 made `history_new`, a table without indexes that settles recorded into (one
# page more in a commit rather than three), moved into `history` every 50 records.
# Version 7 records an ack in place instead, and moves what history_new held.
_HISTORY_NEW = f"CREATE TABLE history_new {_HISTORY_TABLE}"
# Version 7 (issue 28): an ack of a queue that keeps a history turns its message into a
# finished one, in place: state 3, visible_at its finish time, and the last attempt's
# duration, exit code and output. That message is the ack's record until it is pruned;
# `history` keeps the records of dead letters (a dead letter itself stays one, to be
# requeued) and those of older versions. The ack is one UPDATE in its own commit, whose
# row's page is written anyway: the record costs the commit one entry of
# `messages_finished`. Per ack, on a /tmp store at durability normal (5,000 acks, 6
# rounds): 19.0 us unkept (DELETE); 25.2 us in place; 34.0 us for version 6's DELETE ...
# RETURNING + INSERT into history_new, moved every 50; 29.1 us in place and moved into
# history every 50.
_FINISHED_INDEX = "CREATE INDEX messages_finished ON messages (queue, visible_at) WHERE state = 3"

SCHEMA = (
    """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID""",
    # visible_at: when the message can next be leased (available_at while waiting,
    # lease_expires_at while leased); dead letters keep their dead_at there.
    """CREATE TABLE messages (
        seq INTEGER PRIMARY KEY,
        nonce INTEGER NOT NULL,
        queue TEXT NOT NULL,
        value BLOB NOT NULL,
        state INTEGER NOT NULL,
        visible_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        enqueued_at REAL NOT NULL,
        available_at REAL,
        leased_at REAL,
        lease_expires_at REAL,
        leased_by TEXT,
        lease_token TEXT,
        lease_timeout REAL,
        last_error BLOB,
        failed_at REAL,
        dead_at REAL,
        priority INTEGER NOT NULL DEFAULT 0,
        key TEXT,
        first_started_at REAL,
        errors BLOB,
        grp TEXT,
        duration REAL,
        exit_code INTEGER,
        output BLOB
    )""",
    _FINISHED_INDEX,
    """CREATE INDEX messages_dead ON messages (queue, visible_at) WHERE state = 2""",
    *_KNOWN_QUEUES_SCHEMA,
    _VISIBLE_INDEX,
    _KEY_INDEX,
    _SETTINGS_SCHEMA,
    *_KEEP_COLUMNS,
    *_HISTORY_SCHEMA,
    *_LIMIT_COLUMNS,
    *_GROUPS_SCHEMA,
)
# Every step: the statements that take schema version N to N + 1 (docs/schema.md).
MIGRATIONS = {
    1: (*_KNOWN_QUEUES_SCHEMA, "INSERT OR IGNORE INTO queues (name) SELECT queue FROM messages"),
    2: (  # issue 26: keys and priorities; a message of an older store has priority 0
        "ALTER TABLE messages ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE messages ADD COLUMN key TEXT",
        "DROP INDEX messages_visible",
        _VISIBLE_INDEX,
        _KEY_INDEX,
    ),
    3: (_SETTINGS_SCHEMA,),  # issue 27: queue settings; an older store's queues have none
    4: (  # issue 28: retention and history; an older message has no first start or errors
        "ALTER TABLE messages ADD COLUMN first_started_at REAL",
        "ALTER TABLE messages ADD COLUMN errors BLOB",
        *_KEEP_COLUMNS,
        *_HISTORY_SCHEMA,
    ),
    5: (  # issue 27: limits and groups; an older message has no group, a queue no limits
        "ALTER TABLE messages ADD COLUMN grp TEXT",
        *_LIMIT_COLUMNS,
        *_GROUPS_SCHEMA,
        _HISTORY_NEW,  # issue 28: where a settle records (see _HISTORY_SCHEMA)
    ),
    6: (  # issue 28: acks record in place; what history_new holds moves into history
        "ALTER TABLE messages ADD COLUMN duration REAL",
        "ALTER TABLE messages ADD COLUMN exit_code INTEGER",
        "ALTER TABLE messages ADD COLUMN output BLOB",
        _FINISHED_INDEX,
        f"""INSERT INTO history ({_RECORD_COLUMNS})
            SELECT {_RECORD_COLUMNS} FROM history_new ORDER BY seq""",
        "DROP TABLE history_new",
    ),
}

COLUMNS = (
    "seq, nonce, queue, value, state, visible_at, attempts, enqueued_at, available_at, leased_at,"
    " lease_expires_at, leased_by, lease_token, last_error, failed_at, dead_at, key, priority, grp"
)
INSERT = (
    "INSERT INTO messages"
    " (nonce, queue, value, state, visible_at, enqueued_at, available_at, priority)"
    " VALUES (?, ?, ?, 0, ?, ?, ?, ?)"
)
# A keyed put with on_conflict "replace", one value at a time: the unique index on the
# held keys decides, inside the put's own transaction. A waiting holder gets the new
# value, priority and availability; a leased one is left alone (RETURNING nothing: the
# store then reads the holder). "skip" and "error" use insert_keyed_many.
_INSERT_KEYED = f"""INSERT INTO messages (nonce, queue, value, state, visible_at, enqueued_at,
        available_at, priority, key, grp)
    VALUES (:nonce, :queue, :value, 0, :available, :now, :available, :priority, :key, :grp)
    ON CONFLICT (queue, key) WHERE {_KEY_HOLDERS}"""
# One value that skips a held key (a put of one value: one statement, no BEGIN).
INSERT_SKIPPING = f"{_INSERT_KEYED} DO NOTHING"  # inserted: rowcount 1, lastrowid
INSERT_REPLACING = f"""{_INSERT_KEYED} DO UPDATE SET value = excluded.value,
        priority = excluded.priority, available_at = excluded.available_at,
        visible_at = excluded.visible_at, grp = excluded.grp WHERE state = 0
    RETURNING {COLUMNS}"""
KEY_HOLDER = (
    f"SELECT {COLUMNS} FROM messages WHERE queue = :queue AND key = :key AND {_KEY_HOLDERS}"
)
# The queue's priority levels among live messages, highest first, one index probe each.
_LEVELS = """WITH RECURSIVE levels(p) AS (
        SELECT max(priority) FROM messages WHERE queue = :queue AND state < 2
        UNION ALL
        SELECT (SELECT max(priority) FROM messages
                WHERE queue = :queue AND state < 2 AND priority < levels.p)
        FROM levels WHERE levels.p IS NOT NULL)"""
# The queue's messages under a live lease: in each level, the live leases and delayed
# messages are the entries visible only after now (one range each; a delayed one is read
# to be told apart). Counted only for a queue with max_inflight. It walks the levels
# with a CTE of its own: one that named the lease's `levels` made every lease 2 us
# slower, max_inflight or not (15.7 against 18.0 us a lease, /dev/shm, 8 rounds).
_LIVE_LEASES = """(WITH RECURSIVE live_levels(p) AS (
        SELECT max(priority) FROM messages WHERE queue = :queue AND state < 2
        UNION ALL
        SELECT (SELECT max(priority) FROM messages
                WHERE queue = :queue AND state < 2 AND priority < live_levels.p)
        FROM live_levels WHERE live_levels.p IS NOT NULL)
    SELECT sum((SELECT count(*) FROM messages
            WHERE queue = :queue AND state < 2 AND priority = live_levels.p
                AND visible_at > :now AND state = 1))
    FROM live_levels WHERE live_levels.p IS NOT NULL)"""
# Whether the queue's settings hold every lease back now: one primary-key probe for a
# queue without settings (or without limits); the counts only for the limits it has.
_HELD_BACK = f"""EXISTS (SELECT 1 FROM queue_settings WHERE queue = :queue AND (paused
        OR CASE WHEN max_inflight IS NULL THEN 0 ELSE max_inflight <= {_LIVE_LEASES} END
        OR CASE WHEN rate IS NULL THEN 0 ELSE :now < rate_next END))"""
_PER_GROUP = "(SELECT per_group FROM queue_settings WHERE queue = :queue)"
# A message of group m.grp may be leased: the group has fewer than per_group live leases.
_GROUP_LEASES = """(SELECT count(*) FROM messages AS g INDEXED BY messages_group
    WHERE g.queue = :queue AND g.grp = m.grp AND g.state = 1 AND g.grp IS NOT NULL
        AND g.visible_at > :now)"""
_GROUP_FREE = f"""({_PER_GROUP} IS NULL OR m.grp IS NULL OR {_GROUP_LEASES} < {_PER_GROUP})"""
# The next message to lease: the highest priority with a visible message (of a group
# that is not full), and in it the smallest visibility time, then the oldest; none while
# the queue's settings hold leases back.
_NEXT = f"""{_LEVELS}
    SELECT s FROM (SELECT (SELECT seq FROM messages AS m
            WHERE queue = :queue AND state < 2 AND priority = levels.p AND visible_at <= :now
                AND {_GROUP_FREE}
            ORDER BY visible_at, seq LIMIT 1) AS s
        FROM levels WHERE levels.p IS NOT NULL)
    WHERE s IS NOT NULL AND NOT {_HELD_BACK} LIMIT 1"""
LEASE = f"""UPDATE messages
    SET state = 1, attempts = attempts + 1, leased_at = :now, lease_expires_at = :expires,
        first_started_at = coalesce(first_started_at, :now),
        visible_at = :expires, leased_by = :by, lease_token = :token, lease_timeout = :timeout
    WHERE seq = ({_NEXT})
    RETURNING {COLUMNS}"""
# Fencing: every settle statement matches only the current holder's row.
_MESSAGE = "seq = :seq AND nonce = :nonce AND queue = :queue"
_HELD = f"{_MESSAGE} AND state = 1 AND (:token IS NULL OR lease_token = :token)"
ACK = f"DELETE FROM messages WHERE {_HELD}"
# What releasing and dead-lettering both do: end the lease, keep the error (if one is given).
_END_LEASE = """leased_at = NULL, lease_expires_at = NULL, leased_by = NULL, lease_token = NULL,
        last_error = coalesce(:error, last_error),
        failed_at = CASE WHEN :error IS NULL THEN failed_at ELSE :now END"""
# While the queue keeps a history, a release also appends its error to the message's
# errors (a JSON array), so that its record holds every attempt's error.
_KEEPING = """EXISTS (SELECT 1 FROM queue_settings WHERE queue = :queue
        AND (keep_seconds IS NOT NULL OR keep_count IS NOT NULL))"""
_ERRORS = "json_insert(coalesce(errors, '[]'), '$[#]', json(CAST(:error AS TEXT)))"
RELEASE = f"""UPDATE messages
    SET state = 0, visible_at = :available, available_at = :available, {_END_LEASE},
        errors = CASE WHEN :error IS NOT NULL AND {_KEEPING} THEN {_ERRORS} ELSE errors END
    WHERE {_HELD} RETURNING {COLUMNS}"""
DEAD_LETTER = f"""UPDATE messages
    SET state = 2, visible_at = :now, dead_at = :now, {_END_LEASE},
        errors = CASE WHEN :error IS NOT NULL AND {_KEEPING} THEN {_ERRORS} ELSE errors END
    WHERE {_HELD} RETURNING {COLUMNS}"""
# An ack of a queue that keeps no history: one statement, the setting read inside it
# (matching nothing while the queue keeps one: the store then records and acks).
ACK_UNKEPT = f"{ACK} AND NOT {_KEEPING}"
# History (version 5). RETENTION: the queue's setting (no row: keep nothing). RECORD: the
# history record of a held message that this settle ends, while its queue keeps a
# history (before the ACK or DEAD_LETTER statement, in its transaction; fenced as they
# are: rowcount 0 means not held, or no history kept).
RETENTION = "SELECT keep_seconds, keep_count FROM queue_settings WHERE queue = ?"
KEEP = """INSERT INTO queue_settings (queue, keep_seconds, keep_count) VALUES (?, ?, ?)
    ON CONFLICT (queue) DO UPDATE SET keep_seconds = excluded.keep_seconds,
        keep_count = excluded.keep_count"""
RECORD = f"""INSERT INTO history ({_RECORD_COLUMNS})
    SELECT queue, :id, key, value, :status, attempts, enqueued_at, first_started_at, :now,
        :duration, leased_by, :exit_code,
        CASE WHEN :status = 'dead' THEN coalesce(:error, last_error) END,
        CASE WHEN :error IS NULL THEN errors ELSE {_ERRORS} END, :output
    FROM messages WHERE {_HELD} AND {_KEEPING}"""
# An ack of a queue that keeps a history (matching nothing while it keeps none: the store
# then acks with ACK_UNKEPT): the message is finished, and is its own record.
ACK_KEPT = f"""UPDATE messages SET state = 3, visible_at = :now, duration = :duration,
        exit_code = :exit_code, output = :output
    WHERE {_HELD} AND {_KEEPING}"""
HISTORY_COLUMNS = """id, queue, key, value, status, attempts, enqueued_at, first_started_at,
    finished_at, duration, worker, exit_code, error, errors, output"""
# A finished message as a record (HISTORY_COLUMNS), then its seq.
_AS_RECORD = """printf('%d-%012x', seq, nonce), queue, key, value, 'acked', attempts,
    enqueued_at, first_started_at, visible_at, duration, leased_by, exit_code, NULL,
    errors, output, seq"""
# The records, newest first; of one finish time, the later message first (a record's
# message seq: the digits its id starts with). A merge of the two tables, each down its
# index, so a page of the newest reads a page, however many records there are.
HISTORY = f"""SELECT {HISTORY_COLUMNS}, CAST(id AS INTEGER) AS message_seq FROM history
    WHERE queue = :queue AND finished_at >= :since
        AND (:status IS NULL OR status = :status) AND (:key IS NULL OR key = :key)
    UNION ALL SELECT {_AS_RECORD} FROM messages
    WHERE queue = :queue AND state = 3 AND visible_at >= :since
        AND (:status IS NULL OR :status = 'acked') AND (:key IS NULL OR key = :key)
    ORDER BY finished_at DESC, message_seq DESC LIMIT :limit"""
HISTORY_RECORD = f"""SELECT {HISTORY_COLUMNS}, NULL FROM history WHERE id = :id AND queue = :queue
    UNION ALL SELECT {_AS_RECORD} FROM messages WHERE {_MESSAGE} AND state = 3"""
# Pruning, a batch of each table at a time: records older than the retention; past its
# count, the records from the newest one past it (COUNT_BOUNDARY: the merge's walk down
# the two indexes) on.
PRUNE_AGE = (
    """DELETE FROM history WHERE seq IN (SELECT seq FROM history
        WHERE queue = :queue AND finished_at < :cutoff ORDER BY finished_at LIMIT :batch)""",
    """DELETE FROM messages WHERE seq IN (SELECT seq FROM messages
        WHERE queue = :queue AND state = 3 AND visible_at < :cutoff
        ORDER BY visible_at LIMIT :batch)""",
)
COUNT_BOUNDARY = """SELECT finished_at, CAST(id AS INTEGER) FROM history WHERE queue = :queue
    UNION ALL SELECT visible_at, seq FROM messages WHERE queue = :queue AND state = 3
    ORDER BY 1 DESC, 2 DESC LIMIT 1 OFFSET :count"""
PRUNE_COUNT = (
    """DELETE FROM history WHERE seq IN (SELECT seq FROM history
        WHERE queue = :queue AND finished_at <= :finished
            AND (finished_at < :finished OR CAST(id AS INTEGER) <= :message_seq)
        ORDER BY finished_at LIMIT :batch)""",
    """DELETE FROM messages WHERE seq IN (SELECT seq FROM messages
        WHERE queue = :queue AND state = 3 AND visible_at <= :finished
            AND (visible_at < :finished OR seq <= :message_seq)
        ORDER BY visible_at LIMIT :batch)""",
)
# Every queue with a settings row (a retention on, turned off with records left to prune,
# or only paused: nothing to prune).
KEEPING_QUEUES = "SELECT queue FROM queue_settings ORDER BY queue"
EXTEND = f"""UPDATE messages
    SET lease_expires_at = :expires, visible_at = :expires, lease_timeout = :timeout
    WHERE {_HELD} RETURNING {COLUMNS}"""
PEEK = _NEXT  # a read: is there anything to lease? (a row, or none)
_STRETCHED = """queue = :queue AND state < 2 AND visible_at > :now + 1
      AND state = 1 AND visible_at > :now + lease_timeout + 1"""
REBASE = f"""UPDATE messages
    SET lease_expires_at = :now + lease_timeout, visible_at = :now + lease_timeout
    WHERE {_STRETCHED}"""
ANY_STRETCHED = f"SELECT 1 FROM messages WHERE {_STRETCHED} LIMIT 1"
REVIVE = """UPDATE messages SET state = 0, visible_at = :available, available_at = :available,
    dead_at = NULL WHERE queue = :queue AND state = 2"""
# Why requeueing dead letters broke the key index: a dead letter whose key a live
# message holds, or (when none) two dead letters of one key.
DEAD_KEY_HELD = """SELECT d.key, h.seq, h.nonce FROM messages AS d JOIN messages AS h
    ON h.queue = d.queue AND h.key = d.key AND h.state < 2
    WHERE d.queue = :queue AND d.state = 2 AND d.key IS NOT NULL LIMIT 1"""
DEAD_KEY_TWICE = """SELECT key FROM messages
    WHERE queue = :queue AND state = 2 AND key IS NOT NULL
    GROUP BY key HAVING count(*) > 1 LIMIT 1"""
REVIVE_ONE = f"{REVIVE} AND {_MESSAGE} RETURNING {COLUMNS}"
# Through the partial indexes: the live messages, then the dead letters.
PURGE_LIVE = "DELETE FROM messages WHERE queue = ? AND state < 2"
PURGE_DEAD = "DELETE FROM messages WHERE queue = ? AND state = 2"
GET = f"SELECT {COLUMNS} FROM messages WHERE {_MESSAGE} AND state < 3"
# peek, by state (None: all): highest priority first, oldest first within one
PEEK_ROWS = {
    state: f"""SELECT {COLUMNS} FROM messages WHERE queue = :queue {condition}
    ORDER BY priority DESC, seq LIMIT :limit"""
    for state, condition in _IN_STATE.items()
}
DEAD_LETTERS = f"""SELECT {COLUMNS} FROM messages WHERE queue = ? AND state = 2
    ORDER BY visible_at, seq LIMIT ?"""
STATS = """SELECT count(*), coalesce(sum(visible_at <= :now), 0), coalesce(sum(state = 1), 0)
    FROM messages WHERE queue = :queue AND state < 2"""
STATS_EXPIRED = """SELECT count(*) FROM messages
    WHERE queue = :queue AND state < 2 AND visible_at <= :now AND state = 1"""
DEAD_COUNT = "SELECT count(*) FROM messages WHERE queue = ? AND state = 2"
NEXT_VISIBLE = f"""{_LEVELS}
    SELECT min((SELECT min(visible_at) FROM messages
            WHERE queue = :queue AND state < 2 AND priority = levels.p))
    FROM levels WHERE levels.p IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM queue_settings WHERE queue = :queue AND paused)"""
# For a queue whose ready messages are held back by a limit (NEXT_VISIBLE said now, PEEK
# found nothing): when its earliest live lease ends.
LEASE_ENDS = f"""{_LEVELS}
    SELECT min((SELECT min(visible_at) FROM messages
            WHERE queue = :queue AND state < 2 AND priority = levels.p AND visible_at > :now
                AND state = 1))
    FROM levels WHERE levels.p IS NOT NULL"""
# held_back's counts (the settings are read by SETTINGS and RATE_NEXT): live leases,
# and ready messages of full groups.
HELD_COUNTS = f"""SELECT {_LIVE_LEASES},
        (SELECT count(*) FROM messages AS m WHERE queue = :queue AND state < 2
            AND visible_at <= :now AND grp IS NOT NULL AND {_GROUP_LEASES} >= :per_group)"""
SET_LIMITS = """INSERT INTO queue_settings
        (queue, max_inflight, rate, rate_period, per_group)
    VALUES (:queue, :max_inflight, :rate, :rate_period, :per_group)
    ON CONFLICT (queue) DO UPDATE SET max_inflight = excluded.max_inflight,
        rate = excluded.rate, rate_period = excluded.rate_period,
        per_group = excluded.per_group,
        rate_next = CASE WHEN :reset_rate THEN NULL ELSE rate_next END"""

MESSAGE_COUNT = "SELECT count(*) FROM messages WHERE state < 3"
PENDING = "SELECT count(*) FROM messages WHERE queue = ? AND state = 0"


_MAX_CHUNK = 512


def chunks(count: int) -> list[int]:
    """Split a batch into power-of-two chunks of at most _MAX_CHUNK rows, so only a few
    distinct INSERT statements are ever prepared (and stay in the statement cache)."""
    sizes = [_MAX_CHUNK] * (count // _MAX_CHUNK)
    rest = count % _MAX_CHUNK
    size = _MAX_CHUNK
    while rest:
        size //= 2
        if rest >= size:
            sizes.append(size)
            rest -= size
    return sizes


@functools.lru_cache(maxsize=16)
def insert_many(rows: int) -> str:
    """An INSERT of ``rows`` values in one statement: executemany steps the statement once
    per row from Python, which costs three times as much as the insert itself."""
    values = ",".join(f"(?{6 + i})" for i in range(rows))
    return (
        "INSERT INTO messages"
        " (nonce, queue, value, state, visible_at, enqueued_at, available_at, priority)"
        f" SELECT ?1, ?2, column1, 0, ?3, ?4, ?3, ?5 FROM (VALUES {values})"
    )


@functools.lru_cache(maxsize=32)
def insert_keyed_many(rows: int, grouped: bool = False) -> str:
    """:func:`insert_many` with a key per value (``?6, ?7`` the first value and key, ...;
    ``grouped``: and its group, ``?6, ?7, ?8``) that skips each value whose key is held,
    also by a value earlier in the statement (rows are inserted in order); returns the
    seq and key of each value inserted."""
    width = 3 if grouped else 2
    values = ",".join(
        "(" + ", ".join(f"?{6 + width * i + j}" for j in range(width)) + ")" for i in range(rows)
    )
    column, value = (", grp", ", column3") if grouped else ("", "")
    return (
        "INSERT INTO messages (nonce, queue, value, state, visible_at, enqueued_at,"
        f" available_at, priority, key{column})"
        f" SELECT ?1, ?2, column1, 0, ?3, ?4, ?3, ?5, column2{value}"
        f" FROM (VALUES {values}) WHERE true"
        f" ON CONFLICT (queue, key) WHERE {_KEY_HOLDERS} DO NOTHING RETURNING seq, key"
    )


# -- shell completion: read-only lookups ---------------------------------------------------
# For localqueue.cli.complete, which answers each TAB from the store file over its own
# read-only connection (a SQLiteQueueStore could create or migrate the file, and costs more
# start-up than a TAB has). Each query goes through one of the partial indexes above.
# ``rows(sql, params)`` is the caller's runner: it may stop a query early (a TAB has a time
# budget) and returns the rows read by then, so these return what was found in time.

# The states a command's message ids can be asked in (None: any state), as the contract's codes.
COMPLETION_STATES = {"inflight": INFLIGHT, "dead": DEAD}
_MAX_SEQ = 2**63 - 1  # SQLite's largest rowid
_LIVE = f"state < {DEAD}"  # waiting or leased: the condition of the messages_visible index

# Every queue the store has held, drained ones too (the queues table, from version 2),
# from the first name >= prefix on by primary key.
_COMPLETION_KNOWN_QUEUES = """SELECT name FROM queues
    WHERE name >= :prefix AND substr(name, 1, length(:prefix)) = :prefix ORDER BY name"""
# A version 1 file (read-only here, so never migrated) has no queues table: the queues
# holding messages, through the two partial indexes, one index probe per queue (a loose
# index scan) instead of a scan of every message.
_COMPLETION_QUEUES = f"""WITH RECURSIVE
    w(q) AS (SELECT (SELECT min(queue) FROM messages WHERE {_LIVE} AND queue >= :prefix)
        UNION ALL SELECT (SELECT min(queue) FROM messages WHERE {_LIVE} AND queue > w.q)
        FROM w WHERE w.q IS NOT NULL AND substr(w.q, 1, length(:prefix)) = :prefix),
    d(q) AS (SELECT (SELECT min(queue) FROM messages WHERE state = {DEAD} AND queue >= :prefix)
        UNION ALL SELECT (SELECT min(queue) FROM messages WHERE state = {DEAD} AND queue > d.q)
        FROM d WHERE d.q IS NOT NULL AND substr(d.q, 1, length(:prefix)) = :prefix)
    SELECT q FROM w WHERE q IS NOT NULL UNION SELECT q FROM d WHERE q IS NOT NULL"""
# The queues holding messages (live or dead), the same way.
QUEUE_NAMES = f"SELECT q FROM ({_COMPLETION_QUEUES}) ORDER BY q"
# In the index's order (by visibility time within each priority level since version 3).
_COMPLETION_IDS_LIVE = f"""SELECT seq, nonce FROM messages INDEXED BY messages_visible
    WHERE queue = ? AND {_LIVE} LIMIT ?"""
# Live leases are visible again only in the future (with the delayed messages): a short
# index range. Expired leases hide among the ready messages: looked for while time is left.
_COMPLETION_IDS_LEASED = f"""SELECT seq, nonce FROM messages INDEXED BY messages_visible
    WHERE queue = ? AND {_LIVE} AND visible_at > ? AND state = {INFLIGHT} LIMIT ?"""
_COMPLETION_IDS_EXPIRED = f"""SELECT seq, nonce FROM messages INDEXED BY messages_visible
    WHERE queue = ? AND {_LIVE} AND visible_at <= ? AND state = {INFLIGHT} LIMIT ?"""
_COMPLETION_IDS_DEAD = f"""SELECT seq, nonce FROM messages INDEXED BY messages_dead
    WHERE queue = ? AND state = {DEAD} ORDER BY visible_at LIMIT ?"""
_COMPLETION_IDS_SEQ = """SELECT seq, nonce FROM messages WHERE seq >= ? AND seq < ? AND queue = ?
    AND state < 3 AND (? IS NULL OR state = ?) ORDER BY seq LIMIT ?"""


def completion_queues(rows: Rows, prefix: str = "") -> list[str]:
    """The names of the queues the store has held that start with ``prefix``, sorted
    (for a version 1 file: of the queues holding messages)."""
    version = rows("PRAGMA user_version", ())
    known = bool(version) and version[0][0] >= 2
    found = rows(_COMPLETION_KNOWN_QUEUES if known else _COMPLETION_QUEUES, {"prefix": prefix})
    return sorted(str(q) for (q,) in found if str(q).startswith(prefix))


def completion_ids(
    rows: Rows, queue: str, state: str | None, prefix: str = "", limit: int = 200
) -> list[str]:
    """Up to ``limit`` ids of ``queue``'s messages starting with ``prefix``, oldest first:
    in any state (``state`` None), leased (``"inflight"``, live or expired leases) or dead
    letters (``"dead"``)."""
    number = None if state is None else COMPLETION_STATES[state]
    seqs = _completion_seq_ranges(prefix)
    found: list[Any] = []
    if seqs:  # the id's digits narrow the seq range down: read it by primary key
        for low, high in seqs:
            found += rows(_COMPLETION_IDS_SEQ, (low, high, queue, number, number, limit))
            if len(found) >= limit:
                break
    elif number == INFLIGHT:
        now = time.time()
        found = rows(_COMPLETION_IDS_LEASED, (queue, now, limit))
        if len(found) < limit:
            found += rows(_COMPLETION_IDS_EXPIRED, (queue, now, limit - len(found)))
    elif number == DEAD:
        found = rows(_COMPLETION_IDS_DEAD, (queue, limit))
    else:
        found = rows(_COMPLETION_IDS_LIVE, (queue, limit))
        found += rows(_COMPLETION_IDS_DEAD, (queue, limit))
    ids = (f"{seq}-{nonce:012x}" for seq, nonce in sorted(found))
    return [message_id for message_id in ids if message_id.startswith(prefix)][:limit]


def _completion_seq_ranges(prefix: str) -> list[tuple[int, int]]:
    """The ``seq`` ranges whose ids start with ``prefix`` (digits, maybe ``-`` and more), in
    ascending order; empty when the prefix does not narrow anything down."""
    digits, dash, _ = prefix.partition("-")
    if not digits.isdigit() or digits.startswith("0"):
        return []
    first = int(digits)
    if dash:
        return [(first, first + 1)] if first <= _MAX_SEQ else []
    ranges = [(first * 10**k, (first + 1) * 10**k) for k in range(0, 20 - len(digits))]
    return [(low, min(high, _MAX_SEQ + 1)) for low, high in ranges if low <= _MAX_SEQ]
