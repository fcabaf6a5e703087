"""``queue peek`` (messages without leasing them) and ``queue delete`` (in any state)."""

from __future__ import annotations

from tests.cli.conftest import SUBPROCESS

pytestmark = SUBPROCESS


def test_peek_prints_messages_by_state_without_leasing(cli):
    first, second, third = cli.add("q", 1, 2, 3)
    cli.json("queue", "add", "q", "--value", "4", "--delay", "60")
    [popped] = cli.json("queue", "pop", "q")
    assert popped["id"] == first
    every = cli.json("queue", "peek", "q")
    assert [(m["value"], m["state"]) for m in every] == [
        (1, "inflight"),
        (2, "ready"),
        (3, "ready"),
        (4, "delayed"),
    ]
    assert [m["id"] for m in cli.json("queue", "peek", "q", "--state", "ready")] == [
        second,
        third,
    ]
    assert [m["value"] for m in cli.json("queue", "peek", "q", "--state", "delayed")] == [4]
    assert [m["value"] for m in cli.json("queue", "peek", "q", "-n", "1")] == [1]
    assert cli.stats("q")["ready"] == 2  # nothing leased
    bad = cli("queue", "peek", "q", "--state", "sleeping")
    assert bad.returncode == 2 and "--state must be one of" in bad.stderr


def test_delete_removes_any_state_and_refuses_unknown_ids_whole(cli):
    ready, leased, dead = cli.add("q", 1, 2, 3)
    cli.json("queue", "pop", "q")  # 1 leased
    unknown = cli("queue", "delete", "q", leased, "1-000000000000")
    assert unknown.returncode == 4
    assert "'1-000000000000'" in unknown.stderr
    assert cli.stats("q")["total"] == 3  # nothing deleted
    assert cli.json("queue", "delete", "q", ready, leased) == [{"queue": "q", "deleted": 2}]
    assert [m["id"] for m in cli.json("queue", "peek", "q")] == [dead]
