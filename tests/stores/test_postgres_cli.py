"""The ``localqueue`` executable on PostgreSQL: ``--store-path postgresql://...`` (and
``--retry-store-path``) select the PostgreSQL stores for every command; the URL's
``?schema=NAME`` keeps each test in its own schema."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fresh_schema, postgres_url

LOCALQUEUE = str(Path(sys.executable).with_name("localqueue"))


@pytest.fixture
def store_url() -> Iterator[str]:
    url = postgres_url()
    psycopg = pytest.importorskip("psycopg", reason="psycopg (localqueue[postgres]) is missing")
    schema = fresh_schema()
    yield f"{url}{'&' if '?' in url else '?'}schema={schema}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOCALQUEUE_")}
    clean.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    return clean


def run(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOCALQUEUE, *args], input=stdin, env=env, capture_output=True, text=True, timeout=120
    )


def lines(result: subprocess.CompletedProcess[str], code: int = 0) -> list[Any]:
    assert result.returncode == code, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_add_pop_ack_and_stats(store_url: str, env: dict[str, str]) -> None:
    added = lines(run(env, "queue", "add", "jobs", "--store-path", store_url, stdin="1\n2\n"))
    assert [m["value"] for m in added] == [1, 2]
    (popped,) = lines(run(env, "queue", "pop", "jobs", "--store-path", store_url))
    assert popped["id"] == added[0]["id"] and popped["state"] == "inflight"
    token = popped["lease_token"]
    ack = ["queue", "ack", "jobs", popped["id"], "--lease-token", token]
    assert run(env, *ack, "--store-path", store_url).returncode == 0
    (stats,) = lines(run(env, "queue", "stats", "jobs", "--store-path", store_url))
    assert (stats["ready"], stats["inflight"], stats["total"]) == (1, 0, 1)


def test_blocked_pop_is_woken_by_an_add_from_another_process(
    store_url: str, env: dict[str, str]
) -> None:
    args = ["queue", "pop", "jobs", "--block", "--timeout", "60", "--store-path", store_url]
    # a store that exists, with the queue known and empty (readers refuse a missing store)
    run(env, "queue", "add", "jobs", "--value", "0", "--store-path", store_url)
    run(env, "queue", "purge", "jobs", "--yes", "--store-path", store_url)
    pop = subprocess.Popen(
        [LOCALQUEUE, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        (added,) = lines(
            run(env, "queue", "add", "jobs", "--value", '"wake"', "--store-path", store_url)
        )
        out, err = pop.communicate(timeout=120)
    finally:
        pop.kill()
    assert pop.returncode == 0, err
    assert json.loads(out)["id"] == added["id"]


def test_exec_keeps_its_retry_budget_in_postgres_too(store_url: str, env: dict[str, str]) -> None:
    (added,) = lines(run(env, "queue", "add", "jobs", "--value", "7", "--store-path", store_url))
    handled = lines(
        run(
            env,
            *("queue", "exec", "jobs", "--max-tries", "2", "--release-delay", "0"),
            *("--store-path", store_url, "--retry-store-path", store_url),
            *("--", sys.executable, "-c", "raise SystemExit(3)"),
        ),
        code=5,
    )
    assert [h["status"] for h in handled] == ["released", "dead"]
    (dead,) = lines(run(env, "queue", "dead", "jobs", "--store-path", store_url))
    assert dead["id"] == added["id"] and dead["attempts"] == 2
    assert dead["last_error"]["exit_code"] == 3


def test_exec_worker_survives_its_connections_being_killed(
    store_url: str, env: dict[str, str]
) -> None:
    psycopg = pytest.importorskip("psycopg")
    app = f"lq_test_{uuid.uuid4().hex[:10]}"
    url = f"{store_url}&application_name={app}"
    stores = ["--store-path", url, "--retry-store-path", url]
    handler = [sys.executable, "-c", "import sys; sys.stdin.read()"]
    # first the store (workers refuse one that does not exist), then the worker
    lines(run(env, "queue", "add", "jobs", "--store-path", store_url, stdin="1\n2\n3\n"))
    worker = subprocess.Popen(
        [LOCALQUEUE, "queue", "exec", "jobs", "--block", *stores, "--", *handler],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    try:
        first = [json.loads(worker.stdout.readline()) for _ in range(3)]
        admin_url = os.environ["LOCALQUEUE_TEST_POSTGRES_URL"]
        with psycopg.connect(admin_url, autocommit=True) as admin:
            (killed,) = admin.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) "
                "FROM pg_stat_activity WHERE application_name = %s",
                (app,),
            ).fetchone()
        assert killed >= 1
        lines(run(env, "queue", "add", "jobs", "--store-path", store_url, stdin="4\n5\n6\n"))
        then = [json.loads(worker.stdout.readline()) for _ in range(3)]
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
    finally:
        worker.kill()
        worker.wait()
    assert worker.returncode == 0, err
    assert [h["status"] for h in first + then] == ["acked"] * 6
    (stats,) = lines(run(env, "queue", "stats", "jobs", "--store-path", store_url))
    assert stats["total"] == 0


def test_unreachable_server_is_a_clean_error(env: dict[str, str]) -> None:
    result = run(
        env, "queue", "size", "jobs", "--store-path", "postgresql://me:hunter2pw@127.0.0.1:1/db"
    )
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.startswith("localqueue: error: cannot connect to postgresql://me@")
    assert "hunter2pw" not in result.stderr
