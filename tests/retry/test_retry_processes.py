"""Separate Python processes sharing one attempt store: the budget carries over."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import unavailable

CHILD = textwrap.dedent(
    """
    import json, os, sys
    from tenacity import retry_if_exception_type, stop_after_attempt
    from localqueue.retry import PersistentRetryExhausted, key_from_argument, persistent_retry

    kind, path, log_path, mode = sys.argv[1:5]
    if kind == "sqlite":
        from localqueue.retry import SQLiteAttemptStore as Store
    else:
        from localqueue.retry import LMDBAttemptStore as Store

    @persistent_retry(
        key_fn=key_from_argument("email_id", prefix="email"),
        store=Store(path),
        stop=stop_after_attempt(3),
        retry=retry_if_exception_type(ConnectionError),
    )
    def send_email(email_id, address):
        with open(log_path, "a") as log:
            log.write(f"{os.getpid()} {mode}\\n")
        if mode == "crash":
            os._exit(9)  # dies in the middle of its attempt
        raise ConnectionError(f"smtp down for {address}")

    try:
        send_email("42", "user@example.com")
    except PersistentRetryExhausted as exc:
        print(json.dumps({
            "outcome": "exhausted",
            "attempts": exc.attempts,
            "cause": type(exc.__cause__).__name__,
            "last_error": exc.last_error,
        }))
    """
)


def run_child(script: Path, kind: str, store: Path, log: Path, mode: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, str(script), kind, str(store), str(log), mode],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stderr == "" or done.returncode != 0, done.stderr
    return done.returncode, done.stdout


@pytest.mark.parametrize("kind", ["sqlite", "lmdb"])
def test_budget_carries_over_between_processes(tmp_path: Path, kind: str) -> None:
    if kind == "lmdb":
        try:
            import lmdb  # noqa: F401
        except ImportError:
            unavailable("the lmdb package is not installed")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    store = tmp_path / ("retries.sqlite3" if kind == "sqlite" else "retries.lmdb")
    log = tmp_path / "calls.log"

    def calls() -> int:
        return len(log.read_text().splitlines()) if log.exists() else 0

    # Process 1 dies during its first attempt: the attempt is spent all the same.
    code, out = run_child(script, kind, store, log, "crash")
    assert (code, out, calls()) == (9, "", 1)

    # Process 2 gets the two attempts left, then the budget is exhausted.
    code, out = run_child(script, kind, store, log, "fail")
    assert code == 0 and calls() == 3
    report = json.loads(out)
    assert report["attempts"] == 3 and report["cause"] == "ConnectionError"
    assert report["last_error"]["message"] == "smtp down for user@example.com"

    # Process 3 is refused before the function runs.
    code, out = run_child(script, kind, store, log, "fail")
    assert code == 0 and calls() == 3
    report = json.loads(out)
    assert report["attempts"] == 3 and report["cause"] == "RecordedAttemptError"
    assert report["last_error"]["message"] == "smtp down for user@example.com"
