"""A full disk, a read-only store, a damaged file, a file swapped away."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from localqueue import PersistentQueue
from tests.faults.conftest import snapshot
from tests.faults.helpers import clean_env, popen, read_line, run, stats, wait_for

PAGE = 4096


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:  # in the child, before exec: writes past `limit` fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return apply


def test_disk_full_on_add(tmp_path: Path) -> None:
    store = tmp_path / "q.sqlite3"
    PersistentQueue("q", store).put("first")
    before = snapshot(store)
    big = "".join(json.dumps({"n": i, "pad": "x" * 500}) + "\n" for i in range(2000))
    full = subprocess.run(
        [str(Path(os.sys.executable).with_name("localqueue")), "queue", "add", "q",
         "--store-path", str(store)],
        input=big.encode(), capture_output=True, env=clean_env(tmp_path), cwd=tmp_path,
        preexec_fn=_file_size_limit(256 * 1024), timeout=60,
    )  # fmt: skip
    assert full.returncode == 1
    assert full.stdout == b""
    assert f"{store}: disk I/O error; cannot grow the file: the file size limit" in (
        full.stderr.decode()
    )
    assert snapshot(store) == before
    again = run(tmp_path, "queue", "add", "q", "--store-path", str(store), stdin=big)
    assert again.returncode == 0, again.stderr
    assert stats(tmp_path, store)["total"] == 2001


FILL_DISK = """
import os, resource, signal

def fill_disk(value):
    # the handler runs in the worker process: from now on its files cannot grow
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    wal = os.path.getsize(value["wal"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (wal, resource.RLIM_INFINITY))
"""


def test_disk_full_on_ack_is_not_reported_as_acked(tmp_path: Path) -> None:
    (tmp_path / "disk.py").write_text(FILL_DISK)
    store, retries = tmp_path / "q.sqlite3", tmp_path / "r.sqlite3"
    stores = ("--store-path", str(store), "--retry-store-path", str(retries))
    value = json.dumps({"wal": f"{store}-wal"})
    assert run(tmp_path, "queue", "add", "q", "--value", value, *stores[:2]).returncode == 0
    worker = run(
        tmp_path, "queue", "process", "q", "disk:fill_disk", "--lease-timeout", "1", *stores
    )
    assert worker.returncode == 1
    assert "acked" not in worker.stdout
    assert f"{store}: disk I/O error; cannot grow the file: the file size limit" in (worker.stderr)
    after = snapshot(store)
    assert after["integrity"] == ["ok"] and len(after["rows"]) == 1  # still there, leased
    # space is back: once the lease expires the message is handled again and acked
    ok = run(tmp_path, "queue", "exec", "q", "--block", "--max-jobs", "1", *stores, "--", "true")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["status"] == "acked"
    assert stats(tmp_path, store)["total"] == 0


def _as_nobody(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         str(Path(os.sys.executable).with_name("localqueue")), *args],
        capture_output=True, text=True, env=clean_env(home), cwd="/", timeout=60,
    )  # fmt: skip
    return done


needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to run a command as user nobody",
)


@needs_root
@pytest.mark.parametrize("where", ["read-only-file", "read-only-directory", "owner-has-it-open"])
def test_read_only_store(where: str) -> None:
    top = Path(tempfile.mkdtemp(prefix="localqueue-ro-"))  # pytest's tmp_path is 0700
    try:
        top.chmod(0o755)
        _read_only_store(top, where)
    finally:
        shutil.rmtree(top)


def _read_only_store(top: Path, where: str) -> None:
    directory = top / "stores"
    directory.mkdir()
    store = directory / "q.sqlite3"
    q = PersistentQueue("q", store)
    q.put("one")
    q.close()
    store.chmod(0o644)  # readable by others, writable only by its owner (root)
    owner = None
    if where == "read-only-file":
        os.chown(directory, 65534, 65534)  # nobody may create the -wal and -shm here
    else:
        directory.chmod(0o755)  # nobody can create anything here
    if where == "owner-has-it-open":  # its -wal and -shm exist (0644 like the file)
        owner = PersistentQueue("q", store)
        owner.put("two")
        owner.ack(owner.get_message(block=False))
    data = store.read_bytes()
    sp = ("--store-path", str(store))
    for argv in (("queue", "add", "q", "--value", "2"), ("queue", "pop", "q")):
        denied = _as_nobody(top, *argv, *sp)
        assert denied.returncode == 1, denied.stderr
        assert f"{store}: the store is read-only for this user" in denied.stderr
        assert denied.stdout == ""
    assert _as_nobody(top, "queue", "size", "q", *sp).stdout == "1\n"
    assert json.loads(_as_nobody(top, "queue", "stats", "q", *sp).stdout)["ready"] == 1
    assert json.loads(_as_nobody(top, "store", "check", *sp).stdout)["ok"] is True
    assert store.read_bytes() == data
    if owner is not None:
        owner.close()
    q = PersistentQueue("q", store)  # its owner still uses it
    q.ack(q.get_message(block=False))
    assert q.qsize() == 0
    q.close()


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(3 * PAGE))


def _foreign(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()


def _newer(path: Path) -> None:
    PersistentQueue("q", path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()


def _flipped(path: Path) -> None:
    q = PersistentQueue("q", path)
    q.put_many([{"n": i, "pad": "x" * 100} for i in range(3000)])
    q.close()
    data = bytearray(path.read_bytes())
    for offset in range(PAGE, len(data)):  # every page but the first (the schema)
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncated(path: Path) -> None:
    q = PersistentQueue("q", path)
    q.put("x")
    q.close()
    path.write_bytes(path.read_bytes()[:50])


DAMAGE = {
    "garbage": (_garbage, "not a localqueue queue store"),
    "foreign": (_foreign, "not a localqueue queue store (foreign schema)"),
    "newer": (_newer, "schema version 99 is newer than this localqueue supports"),
    "flipped-page": (_flipped, "malformed"),
    "truncated": (_truncated, "malformed"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_store_exits_1_and_is_left_alone(tmp_path: Path, damage: str) -> None:
    store = tmp_path / "q.sqlite3"
    make, expected = DAMAGE[damage]
    make(store)
    data = store.read_bytes()
    sp = ("--store-path", str(store))
    rs = ("--retry-store-path", str(tmp_path / "r.sqlite3"))
    forever = ("queue", "exec", "q", "--forever", *sp, *rs, "--", "true")
    commands = [
        ("queue", "add", "q", "--value", "1", *sp),
        ("queue", "pop", "q", *sp),
        ("queue", "stats", "q", *sp),
        ("store", "check", *sp),
    ]
    if damage != "flipped-page":
        commands.append(forever)  # refused when it opens the store: it never starts
    for argv in commands:
        done = run(tmp_path, *argv, timeout=30)
        assert done.returncode == 1, (argv, done.stderr)
        assert f"{store}: " in done.stderr and expected in done.stderr, (argv, done.stderr)
    if damage == "flipped-page":
        # The file opens and the damage shows on the first lease: the running worker
        # backs off (doubling pauses, each one said on stderr) instead of spinning.
        worker = popen(tmp_path, *forever)
        try:
            first = wait_for(worker.stderr, "looking for work again in 0.25s")[-1]
            assert f"{store}: " in first and expected in first
            wait_for(worker.stderr, "looking for work again in 0.5s")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(30) == 0
        finally:
            worker.kill()
    assert store.read_bytes() == data
    assert not Path(f"{store}-wal").exists() or damage == "flipped-page"


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_store_swapped_under_a_forever_worker(tmp_path: Path, how: str) -> None:
    store = tmp_path / "q.sqlite3"
    sp = ("--store-path", str(store))
    assert run(tmp_path, "queue", "add", "q", "--value", "1", *sp).returncode == 0
    worker = popen(
        tmp_path, "queue", "exec", "q", "--forever", "--idle-sleep", "0.1", *sp,
        "--retry-store-path", str(tmp_path / "r.sqlite3"), "--", "true",
    )  # fmt: skip
    assert json.loads(read_line(worker.stdout))["status"] == "acked"  # it is running
    if how == "deleted":
        store.unlink()
    else:
        other = tmp_path / "other.sqlite3"
        PersistentQueue("q", other).close()
        other.rename(store)
    wait_for(worker.stderr, "deleted or replaced while in use", timeout=15)
    assert worker.wait(15) == 1
    if how == "replaced":
        assert stats(tmp_path, store)["total"] == 0
