"""A process whose wall clock is an hour ahead
or behind (libfaketime) shares a store with processes on the true clock."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.faults.helpers import clean_env, run, stats

libfaketime = pytest.importorskip("libfaketime", reason="the libfaketime wheel (test extra)")
PRELOAD = Path(libfaketime.__file__).parent / "vendor/libfaketime/src/libfaketime.so.1"


def _skewed(home: Path, offset: str, *args: str) -> dict[str, object]:
    env = clean_env(home, LD_PRELOAD=str(PRELOAD), FAKETIME=offset)
    done = run(home, *args, env=env)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_cli_clock_an_hour_ahead_does_not_strand_its_lease(tmp_path: Path) -> None:
    sp = ("--store-path", str(tmp_path / "q.sqlite3"))
    assert run(tmp_path, "queue", "add", "q", "--value", "1", *sp).returncode == 0
    ahead = _skewed(tmp_path, "+1h", "queue", "pop", "q", "--lease-timeout", "2", *sp)
    assert float(ahead["lease_expires_at"]) > time.time() + 3000  # type: ignore[arg-type]
    # Within its lease timeout plus a margin (exit 3 after 7 s): not an hour.
    again = run(tmp_path, "queue", "pop", "q", "--block", "--timeout", "7", *sp)
    assert again.returncode == 0, again.stderr
    taken = json.loads(again.stdout)
    assert taken["attempts"] == 2 and taken["lease_token"] != ahead["lease_token"]
    token = str(ahead["lease_token"])
    stale = run(tmp_path, "queue", "ack", "q", taken["id"], "--lease-token", token, *sp)
    assert stale.returncode == 4
    ok = run(tmp_path, "queue", "ack", "q", taken["id"], "--lease-token", taken["lease_token"], *sp)
    assert ok.returncode == 0 and stats(tmp_path, sp[1])["total"] == 0


def test_cli_clock_an_hour_behind_is_fenced(tmp_path: Path) -> None:
    sp = ("--store-path", str(tmp_path / "q.sqlite3"))
    _skewed(tmp_path, "-1h", "queue", "add", "q", "--value", "1", *sp)  # enqueued "1h ago"
    behind = _skewed(tmp_path, "-1h", "queue", "pop", "q", "--lease-timeout", "30", *sp)
    # to everyone else that lease ended an hour ago: the message goes out again at once
    taken = json.loads(run(tmp_path, "queue", "pop", "q", *sp).stdout)
    assert taken["id"] == behind["id"] and taken["attempts"] == 2
    env = clean_env(tmp_path, LD_PRELOAD=str(PRELOAD), FAKETIME="-1h")
    token = str(behind["lease_token"])
    stale = run(tmp_path, "queue", "ack", "q", taken["id"], "--lease-token", token, *sp, env=env)
    assert stale.returncode == 4  # the slow clock's holder is fenced off
    assert stats(tmp_path, sp[1])["inflight"] == 1
