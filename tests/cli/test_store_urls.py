"""Every queue command works on the store a URL names: ``--store-path lmdb://DIR``."""

from __future__ import annotations

import pytest

from tests.cli.conftest import SUBPROCESS
from tests.conftest import fresh_schema, postgres_url, unavailable

pytestmark = SUBPROCESS


def test_lmdb_store_and_retry_store_through_the_cli(cli, home):
    try:
        import lmdb  # noqa: F401
    except ImportError as exc:
        unavailable(f"lmdb not installed: {exc}")
    cli.store = f"lmdb://{home / 'queue.lmdb'}"  # type: ignore[assignment]
    cli.retries = f"lmdb://{home / 'retries.lmdb'}"  # type: ignore[assignment]
    first, second, third = cli.add("q", 1, 2, 3)
    [popped] = cli.json("queue", "pop", "q")
    assert popped["id"] == first
    cli.json("queue", "ack", "q", first, "--lease-token", popped["lease_token"])
    lines = cli.json("queue", "process", "q", "tests_handlers:fail", "--max-tries", "1")
    assert [(line["id"], line["status"]) for line in lines] == [(second, "dead"), (third, "dead")]
    assert cli.json("queue", "list") == [
        {
            "queue": "q",
            "ready": 0,
            "delayed": 0,
            "inflight": 0,
            "dead": 2,
            "total": 2,
            "paused": False,
            "max_inflight": None,
            "rate": None,
            "per_group": None,
            "held": 0,
        }
    ]
    assert (home / "queue.lmdb").is_dir() and (home / "retries.lmdb").is_dir()


def test_postgres_store_and_retry_store_through_the_cli(cli):
    url = postgres_url()
    try:
        import psycopg
    except ImportError as exc:
        unavailable(f"psycopg not installed: {exc}")
    schema = fresh_schema()
    cli.store = cli.retries = f"{url}{'&' if '?' in url else '?'}schema={schema}"
    try:
        first, second = cli.add("q", 1, 2)
        [popped] = cli.json("queue", "pop", "q", "--worker-id", "w1")
        assert (popped["id"], popped["leased_by"]) == (first, "w1")
        cli.json("queue", "release", "q", first, "--lease-token", popped["lease_token"])
        lines = cli.json("queue", "exec", "q", "--max-tries", "1", "--", "false")
        assert [(line["id"], line["status"]) for line in lines] == [
            (second, "dead"),  # the released one became visible later
            (first, "dead"),
        ]
        assert cli.json("queue", "requeue-dead", "q", "--all") == [{"queue": "q", "requeued": 2}]
        assert [line["status"] for line in cli.json("queue", "exec", "q", "--", "true")] == [
            "acked",
            "acked",
        ]
        assert cli("queue", "size", "q").stdout == "0\n"
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [("postgresql://u@127.0.0.1:1/db", "psycopg", "postgres"), ("lmdb://env", "lmdb", "lmdb")],
)
def test_a_missing_extra_is_a_usage_error_naming_the_install(
    cli, home, monkeypatch, url, module, extra
):
    """A real localqueue process in which ``import psycopg`` (``import lmdb``) fails as
    it does when the extra is not installed."""
    site = home / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"import sys\nsys.modules[{module!r}] = None\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    for argv in (("queue", "add", "q", "--value", "1"), ("queue", "stats", "q")):
        result = cli(*argv, "--store-path", url, store=False)
        assert result.returncode == 2, result.stderr
        assert f'pip install "localqueue[{extra}]"' in result.stderr
        assert result.stderr.startswith("localqueue: error: ")
        assert "Traceback" not in result.stderr
    assert not (cli.cwd / "env").exists()


def test_a_postgres_schema_that_does_not_exist_is_no_such_store(cli):
    url = postgres_url()
    try:
        import psycopg
    except ImportError as exc:
        unavailable(f"psycopg not installed: {exc}")
    schema = fresh_schema()
    cli.store = f"{url}{'&' if '?' in url else '?'}schema={schema}"  # type: ignore[assignment]
    try:
        for argv in (("queue", "stats", "q"), ("queue", "list"), ("queue", "pop", "q")):
            result = cli(*argv)
            assert result.returncode == 1, (argv, result.stderr)
            assert result.stderr.startswith("localqueue: error: no such store: postgresql://")
            assert f"(schema {schema})" in result.stderr
        with psycopg.connect(url, autocommit=True) as admin:
            found = admin.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
            assert found.fetchone() is None  # nothing was created
        cli.add("q", 1)
        assert cli.stats("q")["ready"] == 1
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
