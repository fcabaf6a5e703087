"""Writes the stores of release 0.3.0 (commit 1c6803a) that tests/stores/test_migration.py
migrates: run it with that release first on the path,

    git worktree add /tmp/old 1c6803a
    cd tests/stores/data/release-0.3.0 && PYTHONPATH=/tmp/old python make.py .

It writes ``queue.sqlite3`` and ``queue.lmdb/`` (queue ``jobs``: two ready messages, one
released once with an error; one delayed for ten years; one leased for ten years; one
dead letter; queue ``other``: one ready) and ``postgres.sql``: that release's schema
(its ``CREATE`` statements in schema ``lq_release_0_3``) holding the same messages."""

import sys

from psycopg import sql

from localqueue import LMDBQueueStore, PersistentQueue, SQLiteQueueStore
from localqueue.backends.pg import META_DDL
from localqueue.stores import _pg_sql

TEN_YEARS = 10 * 365 * 86400


def fill(store):
    q = PersistentQueue("jobs", store=store, lease_timeout=TEN_YEARS)
    q.put({"n": 1})  # ready again after one failed try
    q.put({"n": 2})  # becomes dead
    q.put({"n": 3})  # becomes inflight
    q.put({"n": 4}, delay=TEN_YEARS)  # delayed
    q.put({"n": 5})  # ready
    first = q.get_message(block=False)
    assert first.value == {"n": 1}
    q.release(first, error="first try failed")
    q.dead_letter(q.get_message(block=False), error="poison")
    assert q.get_message(block=False).value == {"n": 3}
    PersistentQueue("other", store=store).put("x")
    print(type(store).__name__, q.stats())


def postgres_sql() -> str:
    schema = "lq_release_0_3"
    names = {
        "schema": sql.Identifier(schema),
        "meta": sql.Identifier(schema, "meta"),
        "m": sql.Identifier(schema, "messages"),
        "q": sql.Identifier(schema, "queues"),
    }
    statements = [f'CREATE SCHEMA "{schema}"', META_DDL, *_pg_sql.CREATE]
    rendered = [sql.SQL(text).format(**names).as_string(None) for text in statements]
    meta = f'"{schema}".meta'
    m = f'"{schema}".messages'
    error = '{"type":"RuntimeError","module":"builtins","message":"%s"}'
    rendered += [
        f"INSERT INTO {meta} VALUES ('queue_version', '2'), ('queue_tag', '0a0b0c0d')",
        f"""INSERT INTO {m} (queue, value, dead, inflight, attempts, enqueued_at,
            available_at, visible_at, leased_at, lease_expires_at, leased_by, lease_token,
            last_error, failed_at, dead_at) VALUES
            ('jobs', '{{"n":1}}', false, false, 1, 1.7e9, 1.7e9 + 2, 1.7e9 + 2, NULL, NULL,
                NULL, NULL, '{error % "first try failed"}', 1.7e9 + 2, NULL),
            ('jobs', '{{"n":2}}', true, false, 1, 1.7e9, 1.7e9, 1.7e9, NULL, NULL, NULL, NULL,
                '{error % "poison"}', 1.7e9 + 3, 1.7e9 + 3),
            ('jobs', '{{"n":3}}', false, true, 1, 1.7e9, 1.7e9, 4e9, 1.7e9 + 4, 4e9, NULL,
                'f00d', NULL, NULL, NULL),
            ('jobs', '{{"n":4}}', false, false, 0, 1.7e9, 4e9, 4e9, NULL, NULL, NULL, NULL,
                NULL, NULL, NULL),
            ('jobs', '{{"n":5}}', false, false, 0, 1.7e9, 1.7e9, 1.7e9, NULL, NULL, NULL,
                NULL, NULL, NULL, NULL),
            ('other', '"x"', false, false, 0, 1.7e9, 1.7e9, 1.7e9, NULL, NULL, NULL, NULL,
                NULL, NULL, NULL)""",
    ]
    return ";\n".join(" ".join(text.split()) for text in rendered) + ";\n"


if __name__ == "__main__":
    target = sys.argv[1]
    fill(SQLiteQueueStore(f"{target}/queue.sqlite3"))
    store = SQLiteQueueStore(f"{target}/queue.sqlite3")
    store.checkpoint()
    store.close()
    fill(LMDBQueueStore(f"{target}/queue.lmdb"))
    with open(f"{target}/postgres.sql", "w") as out:
        out.write(postgres_sql())
