"""The batch path of ``queue add``: one pass from stdin lines to stored bytes, and the
printed lines built from the store's rows without decoding them."""

from __future__ import annotations

import json

import pytest

from localqueue import codec
from localqueue.cli.queue.add import read_values
from localqueue.codec import encode_lines
from localqueue.message import QueueMessage, Row, json_lines
from localqueue.stores.memory import MemoryQueueStore
from localqueue.stores.sqlite import SQLiteQueueStore

LINES = [
    '{"to": "a@b.c", "n": 1}',
    "  [1, 2.5, -0.0, 1e5, true, false, null]  ",
    '"caf\\u00e9 \\ud83d\\ude00 \\u2028 \\"q\\""',
    "\t7\r",
    '{"deep": ' * 40 + "1" + "}" * 40,
    json.dumps({"big": "x" * 5000}),  # over orjson's 1 KiB first buffer
    '{"a": 1, "a": 2}',
    "-922337203685477580",
]


def test_encode_lines_stores_what_the_line_by_line_path_stores():
    data = ("\n\n".join(LINES) + "\n  \n").encode()
    values, numbers = read_values(data, raw=False)
    assert encode_lines(data) == [codec.encode(value) for value in values]
    assert numbers == [1, 3, 5, 7, 9, 11, 13, 15]


@pytest.mark.parametrize(
    "line",
    [
        "123456789012345678901234567890",  # beyond 64 bits: needs the exact parser
        "{oops",
        "NaN",
        "[" * 300 + "]" * 300,  # deeper than codec.MAX_DEPTH
        '"\\ud800"',
    ],
)
def test_encode_lines_leaves_lines_it_cannot_vouch_for_to_the_careful_path(line):
    assert encode_lines(f'"ok"\n{line}\n'.encode()) is None


def test_encode_lines_of_nothing_is_nothing():
    assert encode_lines(b"\n  \n\r\n") == []


def _expected(row: Row) -> dict:
    error = None if row.last_error is None else json.loads(row.last_error)
    return QueueMessage(*row._replace(value=json.loads(row.value), last_error=error)).to_dict()


@pytest.mark.parametrize("delay", [0.0, 2.5])
def test_printed_lines_of_a_put_are_the_messages(tmp_path, delay):
    store = SQLiteQueueStore(tmp_path / "q.sqlite3")
    values = [codec.encode({"i": i, "s": "é\u2028"}) for i in range(300)]
    rows = store.put("emails", values, delay=delay)
    lines = json_lines(rows).splitlines()
    assert [json.loads(line) for line in lines] == [_expected(row) for row in rows]
    store.close()


def test_printed_lines_of_a_keyed_put_are_the_messages(tmp_path):
    store = SQLiteQueueStore(tmp_path / "q.sqlite3")
    values = [codec.encode({"i": i}) for i in range(300)]
    keys = [None if i % 7 == 0 else f'key "{i % 200}" \u00e9' for i in range(300)]
    rows, duplicates = store.put_keyed("emails", values, keys, priority=-4)
    assert sum(duplicates) == 71  # i and i + 200 share a key unless either is keyless
    lines = json_lines(rows).splitlines()
    assert [json.loads(line) for line in lines] == [_expected(row) for row in rows]
    store.close()


def test_printed_lines_of_rows_that_differ_are_the_messages():
    store = MemoryQueueStore()
    store.put("q", [b'{"a":1}', b"[2]"])
    leased = store.lease("q", lease_timeout=30, leased_by="w1")
    assert leased is not None
    failed = store.release("q", leased.id, leased.lease_token, delay=0, error=b'{"type":"E"}')
    rows = [failed, *store.put("q", [b'"x"']), failed._replace(id="odd id/\u00e9")]
    lines = json_lines(rows).splitlines()
    assert [json.loads(line) for line in lines] == [_expected(row) for row in rows]
