"""``queue dead`` (with --limit and --watch) and ``queue requeue-dead``."""

from __future__ import annotations

import json

from tests.cli.conftest import SUBPROCESS

pytestmark = SUBPROCESS


def kill(cli, queue, *values):
    ids = cli.add(queue, *values)
    cli.json("queue", "process", queue, "tests_handlers:fail", "--max-tries", "1")
    return ids


def test_dead_lists_dead_letters_with_their_error(cli):
    ids = kill(cli, "q", 1, 2, 3)
    letters = cli.json("queue", "dead", "q")
    assert [m["id"] for m in letters] == ids
    assert all(m["state"] == "dead" for m in letters)
    assert letters[0]["last_error"]["type"] == "RuntimeError"
    assert letters[0]["last_error"]["message"] == "handler failed on 1"
    assert [m["id"] for m in cli.json("queue", "dead", "q", "--limit", "2")] == ids[:2]


def test_dead_of_a_queue_without_dead_letters_prints_nothing(cli):
    cli.empty_queue("q")
    result = cli("queue", "dead", "q")
    assert result.returncode == 0
    assert result.stdout == ""


def test_requeue_dead_one_and_all(cli):
    ids = kill(cli, "q", 1, 2, 3)
    [requeued] = cli.json("queue", "requeue-dead", "q", ids[0])
    assert requeued["state"] == "ready"
    assert requeued["last_error"]["type"] == "RuntimeError"  # kept for the record
    assert cli.json("queue", "requeue-dead", "q", "--all", "--delay", "60") == [
        {"queue": "q", "requeued": 2}
    ]
    assert cli.stats("q") == {
        "queue": "q",
        "ready": 1,
        "delayed": 2,
        "inflight": 0,
        "dead": 0,
        "total": 3,
        "paused": False,
        "max_inflight": None,
        "rate": None,
        "per_group": None,
        "held": 0,
    }


def test_requeue_dead_of_a_live_or_unknown_message_exits_4(cli):
    [live] = cli.add("q", 1)
    assert cli("queue", "requeue-dead", "q", live).returncode == 4
    assert cli("queue", "requeue-dead", "q", "nope").returncode == 4


def test_requeue_dead_needs_an_id_or_all_but_not_both(cli):
    assert cli("queue", "requeue-dead", "q").returncode == 2
    assert cli("queue", "requeue-dead", "q", "x", "--all").returncode == 2


def test_requeued_dead_letter_gets_a_fresh_retry_budget(cli):
    [dead] = kill(cli, "q", 1)
    cli.json("queue", "requeue-dead", "q", dead)
    [line] = cli.json("queue", "process", "q", "tests_handlers:ok", "--max-tries", "1")
    assert line["status"] == "acked"


def test_dead_watch_prints_new_dead_letters_as_they_appear(cli):
    [first] = kill(cli, "q", 1)
    watcher = cli.popen("queue", "dead", "q", "--watch", "--interval", "0.05")
    try:
        assert json.loads(watcher.stdout.readline())["id"] == first
        [second] = kill(cli, "q", 2)
        assert json.loads(watcher.stdout.readline())["id"] == second
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)


def _pipeline(cli, command: str):
    import subprocess

    from tests.cli.conftest import LOCALQUEUE

    line = f'set -o pipefail; "{LOCALQUEUE}" {command} --store-path "{cli.store}" | head -n 1'
    return subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=60)


def test_dead_watch_ends_when_its_reader_does(cli):
    """`queue dead --watch | head -n 1` ends with head (like tail -f), exit 0, even
    though no new dead letter comes to write."""
    [first] = kill(cli, "q", 1)
    done = _pipeline(cli, "queue dead q --watch --interval 30")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == first
    assert done.stderr == ""


def test_stats_watch_ends_when_its_reader_does(cli):
    cli.add("q", 1)
    done = _pipeline(cli, "queue stats q --watch --interval 0.05")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ready"] == 1
    assert done.stderr == ""


def test_interval_without_watch_is_a_usage_error_naming_watch(cli):
    kill(cli, "q", 1)
    for command in ("dead", "stats"):
        result = cli("queue", command, "q", "--interval", "5")
        assert result.returncode == 2, result.stderr
        assert "--interval needs --watch" in result.stderr
        assert result.stdout == ""
