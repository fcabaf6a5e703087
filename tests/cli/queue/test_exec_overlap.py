"""``queue exec`` acks a finished job's message while the next job runs (at ``full``
durability, so that the ack's fsync is off the critical path). Whatever happens around
that overlap -- failures, a vanished command, --max-jobs, a signal, a SIGKILL of the
worker -- every message gets its line, in order, and none is lost or left leased.
"""

from __future__ import annotations

import time

import pytest

from tests.cli.conftest import SUBPROCESS
from tests.cli.queue.test_worker_signals import signal_mid_job

pytestmark = SUBPROCESS

DURABILITIES = pytest.mark.parametrize("durability", ["full", "normal"])


def counts(cli) -> dict[str, int]:
    stats = cli.stats("q")
    return {state: stats[state] for state in ("ready", "delayed", "inflight", "dead")}


@DURABILITIES
def test_lines_keep_the_order_of_the_messages_when_failures_come_between(cli, durability):
    ids = cli.add("q", *range(6))
    odd_fails = "read v; [ $((v % 2)) -eq 0 ]"
    lines = cli.json(
        "queue", "exec", "q", "--max-tries", "1", "--durability", durability,
        "--", "sh", "-c", odd_fails,
    )  # fmt: skip
    assert [line["id"] for line in lines] == ids
    assert [line["status"] for line in lines] == ["acked", "dead"] * 3
    assert counts(cli) == {"ready": 0, "delayed": 0, "inflight": 0, "dead": 3}


@DURABILITIES
def test_max_jobs_leaves_nothing_leased(cli, durability):
    ids = cli.add("q", 1, 2, 3)
    lines = cli.json(
        "queue", "exec", "q", "--max-jobs", "2", "--durability", durability, "--", "true"
    )
    assert [(line["id"], line["status"]) for line in lines] == [
        (ids[0], "acked"),
        (ids[1], "acked"),
    ]
    assert cli.stats("q")["ready"] == 1
    assert cli.stats("q")["inflight"] == 0


def test_a_command_gone_after_a_success_settles_both_in_order(cli, tmp_path):
    """The second job cannot be spawned, so the first one's ack never overlaps a job: it
    is still made, and its line still comes first."""
    script = tmp_path / "once.sh"
    script.write_text('#!/bin/sh\nrm "$0"\n')
    script.chmod(0o755)
    first, second = cli.add("q", 1, 2)
    lines = cli.json("queue", "exec", "q", "--max-tries", "1", "--", str(script))
    assert [(line["id"], line["status"]) for line in lines] == [(first, "acked"), (second, "dead")]
    assert lines[1]["error"]["exit_code"] == 127
    assert cli.stats("q")["inflight"] == 0


def test_a_signal_while_the_next_job_runs_settles_both_then_stops(cli, fifo):
    ready, go = fifo("ready"), fifo("go")
    first, second, _ = cli.add("q", 1, 2, 3)
    second_waits = f'read v; if [ "$v" = 2 ]; then echo started > "{ready}"; read x < "{go}"; fi'
    worker = cli.popen("queue", "exec", "q", "--", "sh", "-c", second_waits)
    lines = signal_mid_job(worker, ready, go)
    assert [(line["id"], line["status"]) for line in lines] == [(first, "acked"), (second, "acked")]
    assert cli.stats("q")["ready"] == 1  # the third was never leased
    assert cli.stats("q")["inflight"] == 0


def test_a_worker_killed_while_the_next_job_runs_loses_no_message(cli, fifo, tmp_path):
    """SIGKILL lands after the first job succeeded and while the second runs, around the
    moment the first one's ack is made: the first is acked or delivered again, never
    lost; the second comes back once its lease expires."""
    ready, log = fifo("ready"), tmp_path / "ran.log"
    first, second = cli.add("q", 1, 2)
    job = (
        f'echo "$LOCALQUEUE_MESSAGE_ID" >> "{log}"; read v;'
        f' if [ "$v" = 2 ]; then echo started > "{ready}"; exec sleep 30; fi'
    )
    worker = cli.popen("queue", "exec", "q", "--lease-timeout", "1", "--", "sh", "-c", job)
    with open(ready) as started:
        assert started.readline() == "started\n"
    worker.kill()
    worker.communicate(timeout=10)
    deadline = time.monotonic() + 20
    while cli.stats("q")["inflight"] and time.monotonic() < deadline:
        time.sleep(0.05)  # the dead worker's leases run out (1 s)
    lines = cli.json(
        "queue", "exec", "q", "--", "sh", "-c", f'echo "$LOCALQUEUE_MESSAGE_ID" >> "{log}"'
    )
    assert second in {line["id"] for line in lines}
    ran = log.read_text().split()
    assert ran.count(first) >= 1
    assert ran.count(second) == 2
    assert counts(cli) == {"ready": 0, "delayed": 0, "inflight": 0, "dead": 0}
