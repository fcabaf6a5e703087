"""The codec follows one set of rules in both its modes: orjson (every process) and the
standard library (a one-shot command, after ``codec.one_shot()``) accept and reject the
same values, and what one writes the other reads back equal."""

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


@pytest.fixture(params=["orjson", "one-shot"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(codec, "_one_shot", False)
    if request.param == "one-shot":
        codec.one_shot()
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


def test_a_one_shot_process_writes_with_the_standard_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(codec, "_one_shot", False)
    assert codec.encode({"a": 1.5e-7}) == b'{"a":1.5e-7}'  # orjson's float spelling
    codec.one_shot()
    assert codec.encode({"a": 1.5e-7}) == b'{"a":1.5e-07}'  # json's
    assert codec.decode(b'{"a":1.5e-7}') == {"a": 1.5e-7}


def test_a_one_shot_process_refuses_what_only_orjson_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import datetime

    moment = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.UTC)
    monkeypatch.setattr(codec, "_one_shot", False)
    assert codec.encode({"at": moment}) == b'{"at":"2026-11-28T12:00:00+00:00"}'
    codec.one_shot()
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        codec.encode({"at": moment})


def test_encode_batch_names_the_problem_of_a_bad_value(engine: str) -> None:
    assert codec.encode_batch([1, "x", [None]]) == [b"1", b'"x"', b"[null]"]
    for bad, error in BAD:
        with pytest.raises(error):
            codec.encode_batch([1, bad, 2])


def test_a_one_shot_queue_add_does_not_import_orjson(tmp_path: Any) -> None:
    import subprocess
    import sys

    argv = ["queue", "add", "q", "--value", '{"n": 1}', "--store-path", str(tmp_path / "s")]
    command = "from localqueue.cli.app import main; main()"
    done = subprocess.run(  # -X importtime lists every module the command imports
        [sys.executable, "-X", "importtime", "-c", command, *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "| localqueue.codec" in done.stderr
    assert "orjson" not in done.stderr
    assert orjson.loads(done.stdout)["value"] == {"n": 1}


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


def test_a_command_run_inside_a_process_leaves_the_codec_as_it_was(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from localqueue.cli.app import run

    monkeypatch.setattr(codec, "_one_shot", False)
    assert run(["queue", "add", "q", "--value", "1", "--store-path", str(tmp_path / "s")]) == 0
    assert orjson.loads(capsys.readouterr().out)["value"] == 1
    assert codec._one_shot is False  # only the console script, which then exits, sets it
