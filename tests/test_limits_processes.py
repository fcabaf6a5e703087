"""Queue limits obeyed by several worker processes at once, on SQLite and PostgreSQL
(issue 27): ``--per-group 1`` never runs two jobs of one group at once anywhere,
``--max-inflight`` caps the jobs running across workers, ``--rate`` paces the jobs'
starts across workers, and a SIGKILLed worker's messages free their slot and their group
when their lease ends. Every job logs its own start and end; the tests read that log."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.test_pause_processes import LOCALQUEUE, env, run, store_path, wait_until

__all__ = ["env", "store_path"]  # the fixtures, shared with the pause tests

pytestmark = pytest.mark.slow

# A job: log "start <value> <time>", sleep a little, log "end <value> <time>" (the
# value is one JSON line without spaces on its stdin).
JOB = (
    'v=$(cat); echo "start $v $(date +%s.%N)" >> log; sleep {sleep};'
    ' echo "end $v $(date +%s.%N)" >> log'
)


def workers(
    env: dict[str, str], cwd: Path, count: int, *options: str, sleep: float = 0.05
) -> list[Any]:
    job = JOB.format(sleep=sleep)
    return [
        subprocess.Popen(
            [LOCALQUEUE, "queue", "exec", "q", *options, "--", "sh", "-c", job],
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]


def finish(procs: list[Any]) -> list[int]:
    codes = []
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        codes.append(proc.returncode)
        assert proc.returncode in (0, 6), err
    return codes


def events(cwd: Path) -> list[tuple[str, dict[str, Any], float]]:
    """The log's lines as (start|end, value, time), in time order."""
    found = []
    for line in (cwd / "log").read_text().splitlines():
        kind, value, at = line.split(" ")
        found.append((kind, json.loads(value), float(at)))
    return sorted(found, key=lambda e: e[2])


def most_running(found: list[tuple[str, dict[str, Any], float]], key: Any) -> dict[Any, int]:
    """For each key(value), the most jobs running at once, from their own start/end."""
    running: dict[Any, int] = {}
    peak: dict[Any, int] = {}
    for kind, value, _ in found:
        k = key(value)
        running[k] = running.get(k, 0) + (1 if kind == "start" else -1)
        peak[k] = max(peak.get(k, 0), running[k])
    return peak


def add(env: dict[str, str], cwd: Path, lines: list[dict[str, Any]], *options: str) -> None:
    stdin = "".join(json.dumps(v, separators=(",", ":")) + "\n" for v in lines)
    result = run(env, cwd, "queue", "add", "q", "-q", *options, stdin=stdin)
    assert result.returncode == 0, result.stderr


def limit(env: dict[str, str], cwd: Path, *options: str) -> None:
    result = run(env, cwd, "queue", "limit", "q", *options)
    assert result.returncode == 0, result.stderr


def test_per_group_1_never_runs_two_jobs_of_one_group_at_once(
    env: dict[str, str], tmp_path: Path
) -> None:
    values = [{"g": f"g{n % 10}", "n": n} for n in range(60)]
    add(env, tmp_path, values, "--group-field", "g")
    limit(env, tmp_path, "--per-group", "1")
    finish(workers(env, tmp_path, 3, "-j", "4"))
    found = events(tmp_path)
    assert sorted(v["n"] for kind, v, _ in found if kind == "end") == list(range(60))
    peaks = most_running(found, lambda v: v["g"])
    assert peaks == {f"g{n}": 1 for n in range(10)}
    assert max(most_running(found, lambda v: "all").values()) > 1  # groups ran side by side


def test_a_group_retried_with_a_delay_does_not_block_its_other_messages(
    env: dict[str, str], tmp_path: Path
) -> None:
    add(env, tmp_path, [{"n": 0}], "--group", "g")  # fails, retried in an hour
    failing = run(env, tmp_path, "queue", "exec", "q", "--release-delay", "3600", "--", "false")
    assert failing.returncode == 6, failing.stderr
    add(env, tmp_path, [{"n": n} for n in range(1, 6)], "--group", "g")
    limit(env, tmp_path, "--per-group", "1")
    assert finish(workers(env, tmp_path, 2, "-j", "2")) == [0, 0]
    assert [v["n"] for kind, v, _ in events(tmp_path) if kind == "end"] == [1, 2, 3, 4, 5]
    counts = json.loads(run(env, tmp_path, "queue", "stats", "q").stdout)
    assert (counts["delayed"], counts["ready"], counts["held"]) == (1, 0, 0)


def test_max_inflight_caps_the_jobs_running_across_workers(
    env: dict[str, str], tmp_path: Path
) -> None:
    add(env, tmp_path, [{"n": n} for n in range(40)])
    limit(env, tmp_path, "--max-inflight", "3")
    finish(workers(env, tmp_path, 4, "-j", "4"))
    found = events(tmp_path)
    assert len([e for e in found if e[0] == "end"]) == 40
    assert most_running(found, lambda v: "all") == {"all": 3}


def test_the_rate_paces_job_starts_across_workers(env: dict[str, str], tmp_path: Path) -> None:
    add(env, tmp_path, [{"n": n} for n in range(41)])
    limit(env, tmp_path, "--rate", "40/s")  # one start each 25 ms at most
    finish(workers(env, tmp_path, 3, "-j", "4", sleep=0.01))
    starts = [at for kind, _, at in events(tmp_path) if kind == "start"]
    assert len(starts) == 41
    # No second holds more than the rate (and a little for the jobs' own start-up jitter),
    # and the 41 starts were spread over 40 steps of 25 ms at least.
    window = max(sum(1 for t in starts if s <= t < s + 1) for s in starts)
    assert window <= 44
    assert starts[-1] - starts[0] >= 40 * 0.025 - 0.1


@pytest.mark.parametrize("option", ["--max-inflight", "--per-group"])
def test_a_killed_workers_message_frees_its_slot_when_its_lease_ends(
    env: dict[str, str], tmp_path: Path, option: str
) -> None:
    add(env, tmp_path, [{"n": 1}, {"n": 2}], "--group", "g")
    limit(env, tmp_path, option, "1")
    worker = subprocess.Popen(
        [
            LOCALQUEUE,
            "queue",
            "exec",
            "q",
            "--lease-timeout",
            "1",
            "--",
            "sh",
            "-c",
            "cat; sleep 5",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_until("the worker's lease", lambda: _stats(env, tmp_path)["inflight"] == 1)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    held = run(env, tmp_path, "queue", "pop", "q")
    popped: list[dict[str, Any]] = []
    if held.returncode == 0:  # its lease had already ended (a slow machine)
        popped.append(json.loads(held.stdout))
    else:
        assert held.returncode == 3
        assert f"held back by its limit {option} 1" in held.stderr

    def pops() -> bool:
        if popped:
            return True
        result = run(env, tmp_path, "queue", "pop", "q")
        if result.returncode == 0:
            popped.append(json.loads(result.stdout))
        return bool(popped)

    wait_until("the killed worker's lease to end", pops)
    assert popped[0]["value"]["n"] in (1, 2) and popped[0]["group"] == "g"


def _stats(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    result = run(env, cwd, "queue", "stats", "q")
    assert result.returncode == 0, result.stderr
    counts: dict[str, Any] = json.loads(result.stdout)
    return counts
