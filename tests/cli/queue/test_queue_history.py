"""``queue keep``, ``queue history``, ``queue log`` and ``queue inspect`` of a finished
message (issue 28), through the real CLI on a real store file."""

from __future__ import annotations

import sqlite3
import time

from tests.cli.conftest import SUBPROCESS

pytestmark = SUBPROCESS

MIB = 1024 * 1024


def test_keep_sets_shows_and_turns_off_the_retention(cli):
    cli.empty_queue("q")
    assert cli.json("queue", "keep", "q") == [
        {"queue": "q", "keep_seconds": None, "keep_count": None}
    ]
    assert cli.json("queue", "keep", "q", "7d")[0]["keep_seconds"] == 7 * 86400
    assert cli.json("queue", "keep", "q", "--count", "100")[0] == {
        "queue": "q",
        "keep_seconds": None,
        "keep_count": 100,
    }
    assert cli.json("queue", "keep", "q", "90m", "--count", "5")[0]["keep_seconds"] == 5400
    assert cli.json("queue", "keep", "q", "--off")[0]["keep_count"] is None
    for bad in (("3x",), ("0s",), ("--count", "0"), ("1h", "--off")):
        result = cli("queue", "keep", "q", *bad)
        assert result.returncode == 2, bad


def test_history_lists_finished_jobs_newest_first_and_filters(cli):
    cli.empty_queue("q")
    cli.json("queue", "keep", "q", "1d")
    first = cli.add("q", {"n": 1})
    cli.json("queue", "exec", "q", "--", "true")
    second = cli.add("q", {"n": 2})
    cli.json("queue", "exec", "q", "--max-tries", "1", "--", "sh", "-c", "echo no >&2; exit 3")
    records = cli.json("queue", "history", "q")
    assert [r["id"] for r in records] == second + first
    dead, acked = records
    assert (dead["status"], dead["exit_code"], dead["state"]) == ("dead", 3, "finished")
    assert dead["error"]["stderr"] == "no\n"
    assert dead["errors"] == [dead["error"]]
    assert (acked["status"], acked["exit_code"], acked["error"]) == ("acked", 0, None)
    assert acked["duration"] >= 0 and acked["first_started_at"] <= acked["finished_at"]
    assert [r["id"] for r in cli.json("queue", "history", "q", "--status", "acked")] == first
    assert [r["id"] for r in cli.json("queue", "history", "q", "-n", "1")] == second
    assert len(cli.json("queue", "history", "q", "--since", "1h")) == 2
    assert cli.json("queue", "history", "q", "--since", f"@{time.time() + 60:.0f}") == []
    assert len(cli.json("queue", "history", "q", "--since", "2020-01-01T00:00:00Z")) == 2
    assert cli("queue", "history", "q", "--since", "2020-01-01").returncode == 2
    assert cli("queue", "history", "q", "--status", "released").returncode == 2


def test_inspect_of_a_finished_id_shows_its_record(cli):
    cli.empty_queue("q")
    cli.json("queue", "keep", "q", "--count", "10")
    [message_id] = cli.add("q", "job")
    cli.json("queue", "exec", "q", "--", "true")
    [record] = cli.json("queue", "inspect", "q", message_id)
    assert record["state"] == "finished" and record["id"] == message_id
    assert record["value"] == "job"
    assert cli("queue", "inspect", "q", "1-000000000000").returncode == 4


def test_log_shows_every_attempts_error_and_the_kept_output(cli):
    cli.empty_queue("q")
    cli.json("queue", "keep", "q", "1d")
    [message_id] = cli.add("q", "job")
    script = 'if [ "$LOCALQUEUE_ATTEMPT" = 1 ]; then echo "try 1 broke" >&2; exit 1; fi; echo done'
    cli.json("queue", "exec", "q", "--backoff", "fixed", "--release-delay", "0", "--",
             "sh", "-c", script)  # fmt: skip
    result = cli("queue", "log", "q", message_id)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert f"{message_id} (q): acked after 2 attempts" in text
    assert "--- stdout (5 bytes) ---\ndone\n" in text
    assert "--- error of attempt 1 ---\nCommandFailed:" in text
    assert "try 1 broke" in text
    assert cli("queue", "log", "q", "1-000000000000").returncode == 4


def test_log_of_a_job_that_printed_a_mib_shows_the_tail_and_says_the_cut(cli):
    cli.empty_queue("q")
    cli.json("queue", "keep", "q", "1d")
    [message_id] = cli.add("q", "big")
    printer = f"head -c {MIB - 4} /dev/zero | tr '\\0' x; echo END"
    cli.json("queue", "exec", "q", "--output", "discard", "--output-limit", "1000", "--",
             "sh", "-c", printer)  # fmt: skip
    [record] = cli.json("queue", "history", "q")
    kept = record["output"]["stdout"]
    assert record["output"]["stdout_bytes"] == MIB
    assert kept.endswith("xxxxEND\n") and len(kept.encode()) == 1000
    text = cli("queue", "log", "q", message_id).stdout
    assert f"--- stdout ({MIB} bytes; the first {MIB - 1000} not kept, the last 1000 below)" in text


def test_a_queue_without_retention_keeps_no_history(cli):
    [message_id] = cli.add("q", "job")
    cli.json("queue", "exec", "q", "--", "true")
    assert cli.json("queue", "history", "q") == []
    assert cli("queue", "inspect", "q", message_id).returncode == 4


def test_store_vacuum_prunes_the_history_past_the_retention(cli):
    cli.empty_queue("q")
    cli.json("queue", "keep", "q", "--count", "1000")
    for _ in range(3):
        cli.add("q", *range(100))
        cli.json("queue", "exec", "q", "--", "true")
    cli.json("queue", "keep", "q", "--count", "10")
    [report] = cli.json("store", "vacuum")
    assert report["history_pruned"] == 290
    records = cli.json("queue", "history", "q")
    assert [r["value"] for r in records] == list(range(99, 89, -1))
    with sqlite3.connect(cli.store) as conn:
        # acked messages are their own records, finished in place (schema 7)
        kept = "SELECT (SELECT count(*) FROM history), (SELECT count(*) FROM messages)"
        assert conn.execute(kept).fetchone() == (0, 10)
    conn.close()
