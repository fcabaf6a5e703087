"""Writes ``queue.sqlite3``: a SQLite store of schema version 5, as main wrote it before
issue 27's limits and groups (commit 5d24e56, unreleased), which tests/stores/
test_migration.py migrates to version 6. Run it with that commit first on the path,

    git worktree add /tmp/old 5d24e56
    cd tests/stores/data/schema-5 && PYTHONPATH=/tmp/old python make.py

Queue ``jobs`` keeps a history (an hour): the message of key ``k`` and priority 3 acked
(its record kept), and ``{"n": 1}`` ready. The file is left in rollback-journal mode (one file)."""

import sqlite3

from localqueue import PersistentQueue, SQLiteQueueStore

store = SQLiteQueueStore("queue.sqlite3")
q = PersistentQueue("jobs", store=store)
q.keep(3600)
q.put({"n": 1})
q.put({"n": 2}, key="k", priority=3)
q.ack(q.get_message(block=False))
store.close()
conn = sqlite3.connect("queue.sqlite3")
conn.execute("PRAGMA journal_mode = DELETE")
conn.close()
