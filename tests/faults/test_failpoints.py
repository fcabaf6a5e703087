"""A process SIGKILLed just before an operation commits leaves the store
exactly as it was before the operation began."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from localqueue import PersistentQueue
from tests.faults.conftest import snapshot

CHILD = textwrap.dedent(
    """
    import sys
    from localqueue import PersistentQueue
    path, operation, message_id, token = sys.argv[1:5]
    q = PersistentQueue("jobs", path)
    if operation == "put":
        q.put_many([{"n": i} for i in range(1000)])
    elif operation == "put-one":
        q.put({"n": 1})
    elif operation == "lease":
        q.get_message(block=False)
    elif operation == "ack":
        q.ack(message_id, lease_token=token)
    elif operation == "release":
        q.release(message_id, delay=60, error="boom", lease_token=token)
    elif operation == "dead_letter":
        q.dead_letter(message_id, error="boom", lease_token=token)
    elif operation == "extend":
        q.extend_lease(message_id, 9999, lease_token=token)
    elif operation == "requeue":
        q.requeue_dead(message_id)
    print("committed", flush=True)
    """
)

# operation run by the child -> failpoint it stops at, and the state to prepare first
CASES = {
    "put": ("put", "empty"),
    "put-one": ("put", "empty"),
    "lease": ("lease", "ready"),
    "ack": ("ack", "leased"),
    "release": ("release", "leased"),
    "dead_letter": ("dead_letter", "leased"),
    "extend": ("extend", "leased"),
    "requeue": ("requeue", "dead"),
}


@pytest.mark.parametrize("operation", list(CASES))
def test_sigkill_before_commit_changes_nothing(tmp_path: Path, operation: str) -> None:
    failpoint, prepare = CASES[operation]
    path = tmp_path / "q.sqlite3"
    q = PersistentQueue("jobs", path)
    message_id = token = "-"
    if prepare != "empty":
        message = q.put({"n": 0})
        message_id = message.id
        if prepare in ("leased", "dead"):
            leased = q.get_message(block=False)
            token = leased.lease_token or "-"
            if prepare == "dead":
                q.dead_letter(leased, error="first death")
    q.close()
    before = snapshot(path)

    env = dict(
        os.environ, LOCALQUEUE_TESTING="1", LOCALQUEUE_FAILPOINT=f"{failpoint}-before-commit"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), operation, message_id, token],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stderr is not None
    line = child.stderr.readline()  # blocks until the child stands at the failpoint
    assert line.strip() == f"localqueue: failpoint {failpoint}-before-commit reached"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)

    after = snapshot(path)
    assert after["integrity"] == ["ok"]
    assert after["rows"] == before["rows"]


def test_failpoints_need_the_testing_switch(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    env = dict(os.environ, LOCALQUEUE_FAILPOINT="put-before-commit")
    env.pop("LOCALQUEUE_TESTING", None)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), "put-one", "-", "-"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert done.stdout.strip() == "committed"
    assert PersistentQueue("jobs", path).qsize() == 1
