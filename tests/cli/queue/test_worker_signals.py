"""Signals and leases of ``queue process`` / ``queue exec`` workers, as real processes.

Every test waits on a line (a FIFO the job writes "started" to, or the worker's JSON
output), never on a sleep.
"""

from __future__ import annotations

import json
import signal

import pytest

from tests.cli.conftest import SUBPROCESS, untimed
from tests.cli.queue.test_queue_exec import alive

pytestmark = SUBPROCESS


def lines_of(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def signal_mid_job(worker, ready, go, signum=signal.SIGTERM) -> list[dict]:
    """Once the job says it started, signal the worker, let the job finish; the worker's
    lines (it must exit 0)."""
    with open(ready) as job:
        assert job.readline() == "started\n"
    worker.send_signal(signum)
    with open(go, "w") as job:
        job.write("go\n")
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    return lines_of(out)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_first_signal_finishes_the_current_exec_job_then_exits_0(cli, fifo, signum):
    ready, go = fifo("ready"), fifo("go")
    first, _ = cli.add("q", 1, 2)
    worker = cli.popen(
        "queue", "exec", "q", "--", "sh", "-c", f'echo started > "{ready}"; read x < "{go}"'
    )
    assert [untimed(line) for line in signal_mid_job(worker, ready, go, signum)] == [
        {"id": first, "queue": "q", "status": "acked", "attempts": 1, "error": None}
    ]
    assert cli.stats("q")["ready"] == 1  # nothing new was leased


def test_first_signal_finishes_a_python_handler(cli, fifo):
    ready, go = fifo("ready"), fifo("go")
    [added] = cli.add("q", {"ready": str(ready), "go": str(go)})
    worker = cli.popen("queue", "process", "q", "tests_handlers:wait_for_go")
    lines = signal_mid_job(worker, ready, go)
    assert [(line["id"], line["status"]) for line in lines] == [(added, "acked")]


def test_second_signal_kills_the_job_releases_without_spending_an_attempt_exits_130(cli, fifo):
    ready = fifo("ready")
    [added] = cli.add("q", 1)
    worker = cli.popen(
        "queue", "exec", "q", "--max-tries", "1", "--",
        "sh", "-c", f'echo $$ > "{ready}"; sleep 60',
    )  # fmt: skip
    with open(ready) as job:
        child = int(job.readline())
    worker.send_signal(signal.SIGTERM)
    worker.send_signal(signal.SIGINT)  # a different signal: the two cannot merge
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 130, err
    assert [(line["id"], line["status"]) for line in lines_of(out)] == [(added, "released")]
    assert not alive(child)
    assert cli.stats("q")["ready"] == 1
    # The interrupted attempt was given back: with --max-tries 1 it still runs (and acks).
    assert [
        line["status"] for line in cli.json("queue", "exec", "q", "--max-tries", "1", "--", "true")
    ] == ["acked"]


def test_second_signal_interrupts_a_python_handler(cli, fifo):
    ready = fifo("ready")
    cli.add("q", {"ready": str(ready)})
    worker = cli.popen("queue", "process", "q", "tests_handlers:hang", "--max-tries", "1")
    with open(ready) as job:
        assert job.readline() == "started\n"
    worker.send_signal(signal.SIGTERM)
    worker.send_signal(signal.SIGINT)
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 130, err
    assert [line["status"] for line in lines_of(out)] == ["released"]
    assert "Traceback" not in err
    [line] = cli.json("queue", "process", "q", "tests_handlers:ok", "--max-tries", "1")
    assert line["status"] == "acked"


@pytest.mark.parametrize("mode", [("--forever", "--block"), ("--block",), ("--forever",)])
def test_idle_waiting_worker_exits_promptly_on_a_signal(cli, mode):
    cli.empty_queue("q")
    worker = cli.popen("queue", "exec", "q", *mode, "--", "true")
    [added] = cli.add("q", 1)  # proves the worker is up and looping: its line comes back
    line = json.loads(worker.stdout.readline())
    assert (line["id"], line["status"]) == (added, "acked")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=5) == 0  # idle: it notices within a quarter of a second


def test_the_lease_is_extended_while_a_long_job_runs(cli, fifo):
    ready, go = fifo("ready"), fifo("go")
    cli.add("q", 1)
    worker = cli.popen(
        "queue", "exec", "q", "--lease-timeout", "1", "--",
        "sh", "-c", f'echo started > "{ready}"; read x < "{go}"',
    )  # fmt: skip
    with open(ready) as job:
        assert job.readline() == "started\n"
    # Three lease timeouts later, a second consumer still finds nothing to lease.
    assert cli("queue", "pop", "q", "--block", "--timeout", "3").returncode == 3
    with open(go, "w") as job:
        job.write("go\n")
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert [line["status"] for line in lines_of(out)] == ["acked"]
