"""Writes ``queue.sqlite3``: a SQLite store of schema version 6, as main wrote it before
acks recorded in place (commit a221248, unreleased), which tests/stores/test_migration.py
migrates to version 7. Run it with that commit first on the path,

    git worktree add /tmp/old a221248
    cd tests/stores/data/schema-6 && PYTHONPATH=/tmp/old python make.py

Queue ``jobs`` keeps a history (an hour): three messages acked (``{"n": 1}`` with output
"one", ``{"n": 2}`` of key ``k``, ``{"n": 3}``) and ``{"n": 4}`` dead-lettered with the
error "poison", all four records still in ``history_new``; ``{"n": 5}`` ready, of group
``g``. The file is left in rollback-journal mode (one file)."""

import sqlite3

from localqueue import PersistentQueue, SQLiteQueueStore
from localqueue.outcome import Outcome

store = SQLiteQueueStore("queue.sqlite3")
q = PersistentQueue("jobs", store=store)
q.keep(3600)
q.put({"n": 1})
q.put({"n": 2}, key="k")
q.put({"n": 3})
q.put({"n": 4})
q.settle_many([Outcome(q.get_message(block=False), "acked", output="one")])
q.ack(q.get_message(block=False))
q.ack(q.get_message(block=False))
q.dead_letter(q.get_message(block=False), error="poison")
q.put({"n": 5}, group="g")
store.close()
conn = sqlite3.connect("queue.sqlite3")
assert conn.execute("SELECT count(*) FROM history_new").fetchone() == (4,)
conn.execute("PRAGMA journal_mode = DELETE")
conn.close()
