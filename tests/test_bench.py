"""``python -m localqueue.bench`` runs every workload and reports in its JSON shape.

Speed itself is never asserted here (see docs/performance.md): only that each workload
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
         "--workloads", "put,put_many,get_ack,roundtrip,mp,cli,sql_put,sql_get_ack,sql_roundtrip",
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


def test_exec_workloads_run_tiny_and_report_their_fields(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "localqueue.bench", "--workloads",
         "exec_parallel,exec_true_parallel", "--durability", "full", "--rounds", "1",
         "--exec-jobs", "4", "--exec-sleep", "0.01", "--exec-concurrency", "1,2",
         "--exec-true-jobs", "4", "--json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    parallel = report["exec_parallel"]["full"]
    assert parallel["jobs"] == 4 and "xargs" in parallel["peers"]
    assert set(parallel["by_concurrency"]) == {"1", "2"}
    for row in parallel["by_concurrency"].values():
        expected = {"exec_s", "exec_jobs_per_s", "speedup"}
        for peer in parallel["peers"]:
            expected |= {f"{peer}_s", f"{peer}_jobs_per_s", f"exec_vs_{peer}"}
        assert set(row) == expected
        assert all(value > 0 for value in row.values())
    assert parallel["by_concurrency"]["1"]["speedup"] == 1.0
    true = report["exec_true_parallel"]["full"]
    assert set(true) == {
        "jobs", "concurrency", "j1_jobs_per_s", "jN_jobs_per_s", "j1_ms_per_job",
        "jN_ms_per_job", "ratio",
    }  # fmt: skip
    assert true["concurrency"] == 4 and all(value > 0 for value in true.values())


def test_exec_concurrency_must_be_numbers():
    result = subprocess.run(
        [sys.executable, "-m", "localqueue.bench", "--workloads", "exec_parallel",
         "--exec-concurrency", "1,x"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--exec-concurrency" in result.stderr


def test_unknown_workload_is_a_usage_error():
    result = subprocess.run(
        [sys.executable, "-m", "localqueue.bench", "--workloads", "put,teleport"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "teleport" in result.stderr


def test_key_and_priority_workloads_run_and_report(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "localqueue.bench", "-n", "60", "--rounds", "1", "--json",
         "--workloads", "put_key,get_ack_prio,cli_keys", "--durability", "normal",
         "--cli-lines", "50"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["msgs_per_s"]["normal"]) == {"put_key", "get_ack_prio"}
    keys = report["cli_keys"]["normal"]
    assert set(keys) == {"stdin_msgs_per_s", "key_field_msgs_per_s", "ratio"}
    assert all(value > 0 for value in keys.values())


def test_the_limits_workload_reports_starts_and_running_jobs(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "localqueue.bench", "--json", "--workloads", "limits",
         "--durability", "normal", "--limit-jobs", "20"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)["limits"]["normal"]
    assert figures["jobs"] == 20 and figures["rate"] == 100
    assert 1 <= figures["most_starts_in_1s"] <= 20
    assert 1 <= figures["most_running"] <= figures["max_inflight"] == 3
    assert figures["rate_wall_s"] > 0 and figures["rate_wall_ratio"] > 0
