"""localqueue.history: a record's JSON line (``queue history``) says what its dict says."""

from __future__ import annotations

import json

import pytest

from localqueue.codec import encode
from localqueue.history import HistoryRow, encode_output, history_dict, history_line

ACKED = HistoryRow(
    "12-00000000abcd", "hooks", "order-812", encode({"order": 812, "note": "ünïcode"}),
    "acked", 1, 1733470000.125, 1733470001.5, 1733470002.75, 0.25, "host:1:w1", 0,
    None, None, encode_output({"stdout": "sent\n", "stdout_bytes": 5}),
)  # fmt: skip
DEAD = HistoryRow(
    "7-0123456789ab", "q.1_x-y", 'a "key" \\ with\tescapes\x7f', encode([1, 2.5, None]),
    "dead", 3, 1e16, None, 2.0, None, "wörker\n", 127,
    encode({"type": "CommandFailed", "message": "exit 127"}), b'[{"a":1},{"b":"\\u00e9"}]',
    None,
)  # fmt: skip
BARE = HistoryRow("1-000000000000", "q", None, b"null", "acked", 0, 0.0, None, 0.5, None,
                  None, None, None, None, encode_output(object()))  # fmt: skip


@pytest.mark.parametrize("row", [ACKED, DEAD, BARE])
def test_a_line_is_the_records_dict_in_its_order(row: HistoryRow) -> None:
    line = history_line(row)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    parsed = json.loads(line)
    assert parsed == history_dict(row)
    assert list(parsed) == list(history_dict(row))
