"""``queue add --key/--key-field/--on-conflict/--priority/--at`` (issue 26), the key and
priority that ``inspect``, ``peek`` and ``pop`` show, ``requeue-dead`` of a dead letter
whose key is held again, and priorities under ``queue exec -j 4``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import LOCALQUEUE, SUBPROCESS

pytestmark = SUBPROCESS


def test_a_second_add_with_a_held_key_prints_the_holder_as_a_duplicate(cli):
    [first] = cli.json("queue", "add", "sync", "--key", "account-42", "--value", '{"n":1}')
    assert (first["key"], first["priority"]) == ("account-42", 0)
    assert "duplicate" not in first
    [again] = cli.json("queue", "add", "sync", "--key", "account-42", "--value", '{"n":2}')
    assert again == {**first, "duplicate": True}
    assert cli.stats("sync")["ready"] == 1


def test_on_conflict_error_exits_4_naming_the_key_and_writes_nothing(cli):
    [held] = cli.json("queue", "add", "sync", "--key", "k1", "--value", "1")
    result = cli(
        "queue", "add", "sync", "--key-field", "k", "--on-conflict", "error",
        stdin='{"k":"k2"}\n{"k":"k1"}\n',
    )  # fmt: skip
    assert result.returncode == 4 and result.stdout == ""
    assert "'k1'" in result.stderr and held["id"] in result.stderr
    assert [m["key"] for m in cli.json("queue", "peek", "sync")] == ["k1"]


def test_on_conflict_replace_updates_a_waiting_message_and_keeps_its_id(cli):
    [delayed] = cli.json("queue", "add", "sync", "--key", "k", "--value", "1", "--delay", "600")
    [replaced] = cli.json(
        "queue", "add", "sync", "--key", "k", "--value", "2", "--on-conflict", "replace",
        "--priority", "3",
    )  # fmt: skip
    assert replaced["id"] == delayed["id"] and "duplicate" not in replaced
    assert (replaced["value"], replaced["state"], replaced["priority"]) == (2, "ready", 3)
    [popped] = cli.json("queue", "pop", "sync")
    [kept] = cli.json(
        "queue", "add", "sync", "--key", "k", "--value", "3", "--on-conflict", "replace"
    )
    assert kept["duplicate"] is True and kept["value"] == 2 and kept["state"] == "inflight"
    assert kept["lease_token"] == popped["lease_token"]


def test_key_field_reads_a_dotted_path_and_a_repeated_key_in_one_batch_is_a_duplicate(cli):
    lines = '{"account":{"id":7}}\n{"account":{"id":"x"}}\n{"account":{"id":7},"n":2}\n'
    out = cli.json("queue", "add", "sync", "--key-field", "account.id", stdin=lines)
    assert [m["key"] for m in out] == ["7", "x", "7"]
    assert [m.get("duplicate", False) for m in out] == [False, False, True]
    assert out[2]["id"] == out[0]["id"] and out[2]["value"] == {"account": {"id": 7}}
    assert cli.stats("sync")["ready"] == 2


def test_a_line_without_the_key_field_exits_65_naming_it_and_writes_nothing(cli):
    result = cli(
        "queue", "add", "sync", "--key-field", "account.id",
        stdin='{"account":{"id":1}}\n\n{"account":{}}\n',
    )  # fmt: skip
    assert result.returncode == 65 and result.stdout == ""
    assert "line 3" in result.stderr and "account.id" in result.stderr
    assert not cli.store.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--key", "a", "--key-field", "b", "--value", "1"],
        ["--on-conflict", "skip", "--value", "1"],
        ["--key", "a", "--on-conflict", "ignore", "--value", "1"],
        ["--key-field", "a", "--raw", "--value", "x"],
        ["--at", "2030-01-01T09:00:00", "--value", "1"],
        ["--at", "tomorrow", "--value", "1"],
        ["--at", "@2000000000", "--delay", "5", "--value", "1"],
    ],
)
def test_bad_enqueue_options_are_usage_errors_and_write_nothing(cli, args):
    result = cli("queue", "add", "q", *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("localqueue: error:")
    assert not cli.store.exists()


def test_at_takes_iso_8601_with_a_timezone_or_epoch_and_a_past_time_is_ready(cli):
    [later] = cli.json("queue", "add", "q", "--value", "1", "--at", "2100-12-24T09:00:00+01:00")
    assert later["state"] == "delayed"
    assert later["available_at"] == pytest.approx(4133318400.0, abs=0.01)
    [epoch] = cli.json("queue", "add", "q", "--value", "2", "--at", "@4133318400")
    assert epoch["available_at"] == pytest.approx(4133318400.0, abs=0.01)
    [past] = cli.json("queue", "add", "q", "--value", "3", "--at", "2001-01-01T00:00:00Z")
    assert past["state"] == "ready"


def test_priorities_order_pop_and_peek_and_both_parsers_agree(cli):
    cli.json("queue", "add", "q", "--value", '"low"', "--priority", "-1")  # Typer: -1
    cli.json("queue", "add", "q", "--value", '"mid"')
    cli.json("queue", "add", "q", "--value", '"high"', "--priority=5")
    cli.json("queue", "add", "q", "--value", '"low2"', "--priority=-1")  # fast path
    assert [m["value"] for m in cli.json("queue", "peek", "q")] == ["high", "mid", "low", "low2"]
    [popped] = cli.json("queue", "pop", "q")
    assert (popped["value"], popped["priority"], popped["key"]) == ("high", 5, None)
    [shown] = cli.json("queue", "inspect", "q", popped["id"])
    assert shown["priority"] == 5 and shown["key"] is None


def test_requeue_dead_is_refused_with_4_while_another_message_holds_the_key(cli):
    cli.json("queue", "add", "q", "--key", "k", "--value", "1")
    cli.json("queue", "exec", "q", "--max-tries", "1", "--", "false")
    [dead] = cli.json("queue", "dead", "q")
    assert dead["key"] == "k"
    [holder] = cli.json("queue", "add", "q", "--key", "k", "--value", "2")
    assert "duplicate" not in holder  # a dead letter holds no key
    result = cli("queue", "requeue-dead", "q", dead["id"])
    assert result.returncode == 4
    assert holder["id"] in result.stderr
    assert cli("queue", "requeue-dead", "q", "--all").returncode == 4
    cli.json("queue", "exec", "q", "--", "true")
    [requeued] = cli.json("queue", "requeue-dead", "q", dead["id"])
    assert requeued["key"] == "k" and requeued["state"] == "ready"


def test_exec_with_four_jobs_takes_higher_priorities_first_and_equal_ones_oldest_first(
    cli, tmp_path: Path
):
    log = tmp_path / "leased.log"
    for n in range(12):  # interleaved: priorities 0, 1, 2, 0, 1, 2, ...
        value = json.dumps({"n": n})
        cli.json("queue", "add", "q", "--value", value, "--priority", str(n % 3))
    # Each job logs its message as leased (inspect shows leased_at: one time per batch).
    job = f'{LOCALQUEUE} queue inspect q "$LOCALQUEUE_MESSAGE_ID" --store-path {cli.store}'
    result = cli("queue", "exec", "q", "-j", "4", "--", "sh", "-c", f"{job} >> {log}")
    assert result.returncode == 0, result.stderr
    leased = {m["value"]["n"]: m["leased_at"] for m in map(json.loads, log.read_text().split())}
    assert sorted(leased) == list(range(12))
    rank = sorted(range(12), key=lambda n: (-(n % 3), n))  # higher first, then oldest
    times = [leased[n] for n in rank]
    assert times == sorted(times), [(n, leased[n]) for n in rank]
    assert len(set(times)) > 1  # more than one lease batch: the order was tested
