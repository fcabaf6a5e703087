"""The codec's two JSON engines follow one set of rules: the standard library (used for
a process's first value) and orjson (every value after that) accept and reject the same
values, and what one writes the other reads back equal."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from localqueue import codec


def _nest(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


GOOD = [
    None,
    True,
    0,
    -(2**63),
    2**64 - 1,
    1.5,
    1e16,
    -1.5e-7,
    "",
    "ünïcode ✓ \x00 \x7f \u2028",
    [],
    {},
    {"a": [1, {"b": None}], "c": "d"},
    (1, 2),
    _nest(codec.MAX_DEPTH),
]
BAD = [
    (object(), TypeError),
    ({1: "x"}, TypeError),
    (2**64, TypeError),
    (-(2**63) - 1, TypeError),
    (float("nan"), ValueError),
    ([math.inf], ValueError),
    ({"x": -math.inf}, ValueError),
    (_nest(codec.MAX_DEPTH + 1), TypeError),
    ("\ud800", TypeError),
]


@pytest.fixture(params=["stdlib", "orjson"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "stdlib":
        monkeypatch.setattr(codec, "_orjson", None)
        monkeypatch.setattr(codec, "_std_calls_left", 10**9)
    else:
        monkeypatch.setattr(codec, "_orjson", orjson)
    yield str(request.param)


@pytest.mark.parametrize("value", GOOD, ids=repr)
def test_good_values_round_trip(engine: str, value: Any) -> None:
    data = codec.encode(value)
    expected = list(value) if isinstance(value, tuple) else value
    assert orjson.loads(data) == expected
    assert codec.decode(data) == expected


@pytest.mark.parametrize(("value", "error"), BAD, ids=lambda v: type(v).__name__)
def test_bad_values_are_rejected_alike(engine: str, value: Any, error: type) -> None:
    with pytest.raises(error):
        codec.encode(value)


def test_the_first_calls_use_the_standard_library_then_orjson(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(codec, "_orjson", None)
    monkeypatch.setattr(codec, "_std_calls_left", codec._STD_CALLS)
    for _ in range(codec._STD_CALLS):
        assert codec.encode({"a": 1.5e-7}) == b'{"a":1.5e-07}'  # json's float spelling
    assert codec.encode({"a": 1.5e-7}) == b'{"a":1.5e-7}'  # orjson's
    assert codec._orjson is orjson


def test_non_native_values_go_to_orjson_even_first(monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime

    monkeypatch.setattr(codec, "_orjson", None)
    monkeypatch.setattr(codec, "_std_calls_left", codec._STD_CALLS)
    moment = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)
    assert codec.encode({"at": moment}) == b'{"at":"2026-11-28T12:00:00+00:00"}'


@pytest.mark.parametrize(
    "text",
    [
        b"{bad json}",
        b"NaN",
        b"[Infinity]",
        b"18446744073709551616",
        b"-9223372036854775809",
        b"\xef\xbb\xbf{}",  # a BOM
        b'"\xff"',  # not UTF-8
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_decode_input_rejects_alike(engine: str, text: bytes) -> None:
    with pytest.raises(ValueError):
        codec.decode_input(text)


def test_decode_input_keeps_big_but_valid_integers(engine: str) -> None:
    assert codec.decode_input(b'{"n": 18446744073709551615}') == {"n": 2**64 - 1}
    assert codec.decode_input("[1, 2.5]") == [1, 2.5]


def test_dumps_line(engine: str) -> None:
    assert codec.dumps_line({"a": [1, "x"]}) == b'{"a":[1,"x"]}\n'


@pytest.mark.parametrize("name", ["a", "emails", "A-b_c.9", "x" * 128])
def test_valid_queue_names(name: str) -> None:
    assert codec.validate_queue_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 129, "a b", "ü", "a/b", "a;id", None, 7])
def test_invalid_queue_names(name: Any) -> None:
    from localqueue import InvalidQueueNameError

    with pytest.raises(InvalidQueueNameError):
        codec.validate_queue_name(name)


def test_json_lines_match_to_dict(tmp_path: Any) -> None:
    from localqueue import PersistentQueue
    from localqueue.message import json_lines

    q = PersistentQueue("jobs", tmp_path / "q.sqlite3")
    rows = q.store.put("jobs", [codec.encode(v) for v in GOOD[:-1]], delay=5)
    q.put({"x": 1})
    leased = q.get_message(block=False, leased_by='odd "worker"\n')
    failed = q.release(leased, error=ValueError('bad "thing"'))
    q.put({"y": 2})
    held = q.get_message(block=False, leased_by='odd "worker"\n')
    rows += [q.store.get("jobs", failed.id), q.store.get("jobs", held.id)]
    lines = json_lines(rows).splitlines()
    assert len(lines) == len(rows)
    for line, row in zip(lines, rows, strict=True):
        expected = q.inspect(row.id)
        assert expected is not None
        assert orjson.loads(line) == orjson.loads(codec.dumps_line(expected.to_dict()))
        assert list(orjson.loads(line)) == list(expected.to_dict())
