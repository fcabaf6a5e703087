"""``queue size``, ``stats`` (json, prometheus, --watch), ``list``, ``wait``, ``purge``."""

from __future__ import annotations

import json

from localqueue.stores.sqlite import SQLiteQueueStore
from tests.cli.conftest import SUBPROCESS

pytestmark = SUBPROCESS


def test_size_is_a_bare_integer_of_ready_messages(cli):
    cli.empty_queue("q")
    assert cli("queue", "size", "q").stdout == "0\n"
    cli.add("q", 1, 2, 3)
    cli.json("queue", "add", "q", "--value", "4", "--delay", "60")
    assert cli("queue", "size", "q").stdout == "3\n"


def test_stats_counts_every_state(cli):
    cli.add("q", 1, 2, 3)
    cli.json("queue", "add", "q", "--value", "4", "--delay", "60")
    cli.json("queue", "pop", "q")
    assert cli.stats("q") == {
        "queue": "q",
        "ready": 2,
        "delayed": 1,
        "inflight": 1,
        "dead": 0,
        "total": 4,
        "paused": False,
        "max_inflight": None,
        "rate": None,
        "per_group": None,
        "held": 0,
    }


def test_stats_without_a_name_and_list_show_every_queue(cli):
    cli.add("b", 1)
    cli.add("a", 1, 2)
    assert [s["queue"] for s in cli.json("queue", "stats")] == ["a", "b"]
    listed = cli.json("queue", "list")
    assert [(s["queue"], s["ready"], s["total"]) for s in listed] == [("a", 2, 2), ("b", 1, 1)]


def test_list_of_an_empty_store_prints_nothing(cli):
    SQLiteQueueStore(cli.store).close()
    result = cli("queue", "list")
    assert result.returncode == 0
    assert result.stdout == ""


def test_stats_prometheus_text_format(cli):
    cli.add("emails", 1, 2)
    text = cli("queue", "stats", "emails", "--format", "prometheus").stdout
    lines = text.splitlines()
    assert lines[0].startswith("# HELP localqueue_messages ")
    assert lines[1] == "# TYPE localqueue_messages gauge"
    assert 'localqueue_messages{queue="emails",state="ready"} 2' in lines
    assert 'localqueue_messages{queue="emails",state="dead"} 0' in lines


def test_stats_bad_format_is_a_usage_error(cli):
    assert cli("queue", "stats", "q", "--format", "xml").returncode == 2


def test_stats_watch_prints_json_lines_until_stopped(cli):
    cli.add("q", 1)
    worker = cli.popen("queue", "stats", "q", "--watch", "--interval", "0.05")
    try:
        first = json.loads(worker.stdout.readline())
        second = json.loads(worker.stdout.readline())
    finally:
        worker.terminate()
        worker.wait(timeout=10)
    assert first["ready"] == second["ready"] == 1


def test_wait_returns_0_when_nothing_is_pending(cli):
    cli.empty_queue("q")
    assert cli("queue", "wait", "q").returncode == 0
    [added] = cli.add("q", 1)
    cli.json("queue", "pop", "q")
    result = cli("queue", "wait", "q", "--timeout", "0.1")
    assert result.returncode == 3
    assert "pending" in result.stderr
    cli.json("queue", "ack", "q", added)
    assert cli("queue", "wait", "q", "--timeout", "5").returncode == 0


def test_wait_ignores_dead_letters(cli):
    cli.add("q", 1)
    cli.json("queue", "process", "q", "tests_handlers:fail", "--max-tries", "1")
    assert cli.stats("q")["dead"] == 1
    assert cli("queue", "wait", "q", "--timeout", "1").returncode == 0


def test_purge_needs_yes_off_a_terminal(cli):
    cli.add("q", 1, 2)
    result = cli("queue", "purge", "q")
    assert result.returncode == 2
    assert "--yes" in result.stderr
    assert cli.stats("q")["total"] == 2
    assert cli.json("queue", "purge", "q", "--yes") == [{"queue": "q", "purged": 2}]
    assert cli.stats("q")["total"] == 0


def test_purge_dead_only_keeps_live_messages(cli):
    cli.add("q", 1)
    cli.json("queue", "process", "q", "tests_handlers:fail", "--max-tries", "1")
    cli.add("q", 2)
    assert cli.json("queue", "purge", "q", "--dead-only", "--yes") == [{"queue": "q", "purged": 1}]
    assert cli.stats("q")["ready"] == 1
