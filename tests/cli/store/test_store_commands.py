"""``store check``, ``store backup DEST`` and ``store vacuum`` on real files."""

from __future__ import annotations

import json
import os
import sqlite3
import stat

from localqueue.stores._sqlite_sql import SCHEMA_VERSION
from tests.cli.conftest import SUBPROCESS

pytestmark = SUBPROCESS


def test_check_reports_integrity_schema_and_counts(cli):
    cli.add("a", 1, 2)
    cli.add("b", 3)
    result = cli("store", "check")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["integrity"] == "ok"
    assert report["schema_version"] == SCHEMA_VERSION and report["messages"] == 3
    assert report["queues"]["a"]["ready"] == 2 and report["queues"]["b"]["total"] == 1


def test_check_exits_1_on_a_damaged_file_and_leaves_it_alone(cli):
    cli.add("a", *range(2000))
    data = bytearray(cli.store.read_bytes())
    page = 4096
    assert len(data) > 6 * page
    for offset in range(3 * page, 4 * page):  # flip every bit of the fourth page
        data[offset] ^= 0xFF
    cli.store.write_bytes(bytes(data))
    result = cli("store", "check")
    assert result.returncode == 1
    assert str(cli.store) in result.stderr and "malformed" in result.stderr
    assert cli.store.read_bytes() == bytes(data)


def test_check_refuses_a_file_that_is_not_a_store(cli):
    cli.store.write_bytes(b"hello, not a database\n" * 20)
    result = cli("store", "check")
    assert result.returncode == 1
    assert f"{cli.store}: not a localqueue queue store" in result.stderr
    assert cli.store.read_bytes() == b"hello, not a database\n" * 20


def test_check_backup_vacuum_need_an_existing_store(cli):
    for args in (("store", "check"), ("store", "vacuum"), ("store", "backup", "b.sqlite3")):
        result = cli(*args)
        assert result.returncode == 1 and "no such store file" in result.stderr
    assert not cli.store.exists()


def test_backup_is_a_verified_0600_copy_and_never_overwrites(cli):
    ids = cli.add("a", *range(100))
    dest = cli.cwd / "backup.sqlite3"
    old = os.umask(0)
    try:
        report = cli.json("store", "backup", str(dest))[0]
    finally:
        os.umask(old)
    assert report == {"path": str(cli.store), "backup": str(dest), "ok": True, "messages": 100}
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    copied = cli.json("queue", "pop", "a", "--store-path", str(dest), store=False)[0]
    assert copied["id"] == ids[0]
    again = cli("store", "backup", str(dest))
    assert again.returncode == 1 and "already exists" in again.stderr


def test_backup_of_a_store_while_a_transaction_is_open_elsewhere(cli):
    cli.add("a", *range(10))
    writer = sqlite3.connect(cli.store, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM messages")  # uncommitted: the backup must not see it
    try:
        report = cli.json("store", "backup", "copy.sqlite3")[0]
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert report["messages"] == 10


def test_vacuum_gives_space_back(cli):
    cli("queue", "add", "a", stdin="".join(f'"{"x" * 1000}{i}"\n' for i in range(3000)))
    assert cli("queue", "purge", "a", "--yes").returncode == 0
    report = cli.json("store", "vacuum")[0]
    assert report["bytes_after"] < report["bytes_before"] / 4
    assert cli.json("store", "check")[0]["ok"] is True


def test_other_store_kinds_are_a_usage_error(cli, tmp_path):
    result = cli("store", "check", "--store-path", f"lmdb://{tmp_path}/env", store=False)
    assert result.returncode == 2 and "LMDB" in result.stderr
    result = cli("store", "vacuum", "--store-path", "postgresql://localhost/x", store=False)
    assert result.returncode == 2 and "PostgreSQL" in result.stderr
