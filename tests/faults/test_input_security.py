"""Bad input is refused whole, files are private, nothing reaches a shell."""

from __future__ import annotations

import ast
import json
import os
import re
import stat
import sys
from pathlib import Path

import pytest

from localqueue import PersistentQueue, StoreError
from localqueue.codec import MAX_VALUE_BYTES
from localqueue.retry import SQLiteAttemptStore
from tests.faults.conftest import snapshot
from tests.faults.helpers import REPO, clean_env, run

BAD_LINES = {
    "bad-json": b'{"a": ',
    "non-utf8": b'"caf\xe9"',
    "bom": b'\xef\xbb\xbf{"a": 1}',
    "control-character": b'"a\x01b"',
    "nan": b"NaN",
    "nan-inside": b'{"x": [1, NaN]}',
    "infinity": b"[1e400]",
    "two-to-the-64": str(2**64).encode(),
    "nested-300-deep": b"[" * 300 + b"]" * 300,
    "over-the-size-limit": b'"' + b"x" * MAX_VALUE_BYTES + b'"',
}


@pytest.mark.parametrize("case", list(BAD_LINES))
def test_bad_input_exits_65_naming_the_line(tmp_path: Path, case: str) -> None:
    store = tmp_path / "q.sqlite3"
    stdin = b'{"ok": 1}\n\n"fine"\n' + BAD_LINES[case] + b"\n[4]\n"
    done = run(tmp_path, "queue", "add", "q", "--store-path", str(store), stdin=stdin)
    assert done.returncode == 65, done.stderr
    assert done.stdout == ""
    assert re.match(r"localqueue: error: stdin line 4(, column \d+)?: ", done.stderr)
    assert not store.exists() or snapshot(store)["rows"] == []


@pytest.mark.parametrize("case", ["bad-json", "nan", "two-to-the-64", "nested-300-deep"])
def test_bad_value_option_exits_65(tmp_path: Path, case: str) -> None:
    store = tmp_path / "q.sqlite3"
    value = BAD_LINES[case].decode()
    done = run(tmp_path, "queue", "add", "q", "--value", value, "--store-path", str(store))
    assert done.returncode == 65
    assert re.match(r"localqueue: error: --value( line 1, column \d+)?: ", done.stderr)
    assert not store.exists() or snapshot(store)["rows"] == []


def test_the_library_refuses_a_value_over_the_limit(tmp_path: Path) -> None:
    q = PersistentQueue("q", tmp_path / "q.sqlite3")
    with pytest.raises(ValueError, match="over the limit"):
        q.put("x" * MAX_VALUE_BYTES)
    q.put("x" * (MAX_VALUE_BYTES - 2))  # exactly at the limit, with its quotes
    assert q.qsize() == 1


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_files_are_0600_even_under_umask_000(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        queue_path, retry_path = tmp_path / "q.sqlite3", tmp_path / "r.sqlite3"
        q = PersistentQueue("q", queue_path)
        q.put(1)
        attempts = SQLiteAttemptStore(retry_path)
        attempts.record_attempt("k", 0.0)
        files = [queue_path, Path(f"{queue_path}-wal"), Path(f"{queue_path}-shm")]
        files += [retry_path, Path(f"{retry_path}-wal"), Path(f"{retry_path}-shm")]
        assert {str(f): _mode(f) for f in files} == {str(f): 0o600 for f in files}
        q.close()
        attempts.close()
        # and through the CLI, in a fresh process
        cli_store = tmp_path / "cli.sqlite3"
        run(tmp_path, "queue", "add", "q", "--value", "1", "--store-path", str(cli_store))
        assert _mode(cli_store) == 0o600
    finally:
        os.umask(old)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown to nobody")
NOBODY = 65534


@needs_root
def test_symlink_to_another_users_file_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs.sqlite3"
    PersistentQueue("q", theirs).close()
    os.chown(theirs, NOBODY, NOBODY)
    before = theirs.read_bytes()
    link = tmp_path / "q.sqlite3"
    link.symlink_to(theirs)
    with pytest.raises(StoreError, match="symlink to a file owned by another user"):
        PersistentQueue("q", link)
    with pytest.raises(StoreError, match="symlink to a file owned by another user"):
        SQLiteAttemptStore(link)
    done = run(tmp_path, "queue", "add", "q", "--value", "1", "--store-path", str(link))
    assert done.returncode == 1 and f"{link}: is a symlink" in done.stderr
    assert theirs.read_bytes() == before
    # a symlink to one's own store is fine
    mine = tmp_path / "mine.sqlite3"
    PersistentQueue("q", mine).close()
    (tmp_path / "alias.sqlite3").symlink_to(mine)
    PersistentQueue("q", tmp_path / "alias.sqlite3").close()


@needs_root
def test_a_sticky_shared_directory_like_tmp_works_for_everyone(tmp_path: Path) -> None:
    """In a sticky world-writable directory of another user (like /tmp) a store of ours
    works; a symlink or another user's store, -wal or -shm planted there is refused."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, NOBODY, NOBODY)
    shared.chmod(0o1777)  # exactly /tmp, but owned by another user
    store = ("--store-path", f"{shared}/q.sqlite3")
    added = run(tmp_path, "queue", "add", "q", "--value", "1", *store)
    assert added.returncode == 0, added.stderr
    assert (shared / "q.sqlite3").stat().st_uid == os.geteuid()
    popped = run(tmp_path, "queue", "pop", "q", *store)  # the file is ours: opened again
    assert popped.returncode == 0, popped.stderr
    retries = ("--retry-store-path", f"{shared}/r.sqlite3")
    assert run(tmp_path, "queue", "add", "w", "--value", "1", *store).returncode == 0
    worker = run(tmp_path, "queue", "exec", "w", *store, *retries, "--", "true")
    assert worker.returncode == 0, worker.stderr

    theirs = shared / "theirs.sqlite3"
    PersistentQueue("q", theirs).close()
    os.chown(theirs, NOBODY, NOBODY)
    (shared / "link.sqlite3").symlink_to(tmp_path / "anywhere.sqlite3")
    planted = shared / "planted.sqlite3-wal"
    planted.write_bytes(b"")
    os.chown(planted, NOBODY, NOBODY)
    for name, why in [
        ("theirs.sqlite3", "belongs to another user"),
        ("link.sqlite3", "is a symlink"),
        ("planted.sqlite3", "planted.sqlite3-wal belongs to another user"),
    ]:
        done = run(
            tmp_path, "queue", "add", "q", "--value", "1", "--store-path", f"{shared}/{name}"
        )
        assert done.returncode == 1, (name, done.stderr)
        assert why in done.stderr, (name, done.stderr)
    assert not (tmp_path / "anywhere.sqlite3").exists()
    assert not (shared / "planted.sqlite3").exists()


@needs_root
def test_a_world_writable_directory_of_someone_else_without_sticky_bit_is_refused(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, NOBODY, NOBODY)
    shared.chmod(0o777)  # anyone may rename or remove our files here
    done = run(tmp_path, "queue", "add", "q", "--value", "1", "--store-path", f"{shared}/q")
    assert done.returncode == 1
    assert "world-writable directory owned by another user" in done.stderr
    assert "without the sticky bit" in done.stderr
    assert list(shared.iterdir()) == []
    own = tmp_path / "own"
    own.mkdir()
    own.chmod(0o777)  # world-writable but ours: allowed
    PersistentQueue("q", own / "q.sqlite3").close()


PYTHON_TAG = """\
store_path: !!python/object/apply:os.system ["touch {pwn}"]
"""


def test_yaml_python_tag_is_rejected_and_not_executed(tmp_path: Path) -> None:
    pwn = tmp_path / "PWN"
    config = tmp_path / "config.yaml"
    config.write_text(PYTHON_TAG.format(pwn=pwn))
    env = clean_env(tmp_path, LOCALQUEUE_CONFIG=str(config))
    for argv in (("config", "show"), ("queue", "size", "q")):
        done = run(tmp_path, *argv, env=env)
        assert done.returncode == 2, done.stderr
        assert str(config) in done.stderr
    assert not pwn.exists()


def test_values_and_argv_never_reach_a_shell(tmp_path: Path) -> None:
    pwn = tmp_path / "PWN"
    store = ("--store-path", str(tmp_path / "q.sqlite3"))
    retries = ("--retry-store-path", str(tmp_path / "r.sqlite3"))
    value = json.dumps(f"$(touch {pwn}); `touch {pwn}`")
    assert run(tmp_path, "queue", "add", "q", "--value", value, *store).returncode == 0
    show = "import sys; print(sys.argv[1:], sys.stdin.read()); sys.exit(3)"
    argv = (sys.executable, "-c", show, ";id", f"$(touch {pwn})", "|", "&&", "true")
    done = run(tmp_path, "queue", "exec", "q", "--max-tries", "1", *store, *retries, "--", *argv)
    assert done.returncode == 5, done.stderr  # the job exited 3: dead-lettered
    error = json.loads(done.stdout)["error"]
    assert error["stdout"].startswith(str([";id", f"$(touch {pwn})", "|", "&&", "true"]))
    assert f"$(touch {pwn})" in error["stdout"]
    assert not pwn.exists()
    shell = tmp_path / "uid"
    done = run(tmp_path, "queue", "add", f"q;id>{shell}", "--value", "1", *store)
    assert done.returncode == 2 and not shell.exists()


FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_MODULES = {"pickle", "cPickle", "marshal", "shelve", "dill"}
SPAWNS = {"run", "Popen", "call", "check_call", "check_output", "getoutput", "getstatusoutput"}


def test_no_pickle_eval_or_shell_true_in_the_package() -> None:
    found = []
    for path in sorted((REPO / "localqueue").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names]
                if isinstance(node, ast.ImportFrom) and node.module:
                    names.append(node.module)
                if {n.split(".")[0] for n in names} & FORBIDDEN_MODULES:
                    found.append(f"{where}: imports {names}")
            elif isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if isinstance(func, ast.Name) and name in FORBIDDEN_CALLS:
                    found.append(f"{where}: calls {name}()")
                if name in {"system", "popen"} and isinstance(func, ast.Attribute):
                    found.append(f"{where}: calls os.{name}()")
                if name == "load" and ast.unparse(func).startswith("yaml."):
                    found.append(f"{where}: yaml.load (use yaml.safe_load)")
                spawns = name in SPAWNS
                for keyword in node.keywords:
                    value = keyword.value
                    literal = isinstance(value, ast.Constant)
                    if keyword.arg == "shell" and (
                        (literal and value.value is True)  # type: ignore[attr-defined]
                        or (spawns and not (literal and value.value is False))  # type: ignore[attr-defined]
                    ):
                        found.append(f"{where}: shell={ast.unparse(keyword.value)}")
    assert found == []
    text = "\n".join(p.read_text() for p in (REPO / "localqueue").rglob("*.py"))
    assert "shell=True" not in text and "yaml.load(" not in text
