"""``python -m localqueue.bench`` runs every workload and reports in its JSON shape.

Speed itself is never asserted here (see README, Performance): only that each workload
ran, checked its own results (mp fails on a lost or doubled message), and reported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_every_workload_runs_and_reports_json(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "localqueue.bench", "-n", "60", "--rounds", "1", "--json",
         "--durability", "normal", "--cli-lines", "50", "--cli-jobs", "5"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rates = report["msgs_per_s"]["normal"]
    assert set(rates) == {
        "put", "put_many", "get_ack", "roundtrip", "mp", "sql_put", "sql_get_ack",
        "sql_roundtrip",
    }  # fmt: skip
    assert all(rate > 0 for rate in rates.values())
    cli = report["cli"]["normal"]
    assert set(cli) == {
        "add_ms", "python_ms", "add_ratio", "stdin_msgs_per_s", "exec_ms_per_msg",
        "spawn_ms", "exec_ratio",
    }  # fmt: skip
    assert all(value > 0 for value in cli.values())


def test_unknown_workload_is_a_usage_error():
    result = subprocess.run(
        [sys.executable, "-m", "localqueue.bench", "--workloads", "put,teleport"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "teleport" in result.stderr
