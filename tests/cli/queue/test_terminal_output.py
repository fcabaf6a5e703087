"""What a person at a terminal sees on stderr: drain progress, the --watch table."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.cli.conftest import LOCALQUEUE, SUBPROCESS

pytestmark = SUBPROCESS
pty = pytest.importorskip("pty")


def read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def test_drain_shows_progress_on_a_terminal_and_only_json_on_stdout(cli):
    cli.add("q", 1, 2, 3)
    leader, follower = pty.openpty()
    worker = subprocess.Popen(
        [LOCALQUEUE, *cli.store_args(("queue", "exec", "q", "--", "true"))],
        stdout=subprocess.PIPE,
        stderr=follower,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    os.close(follower)
    out, _ = worker.communicate(timeout=60)
    terminal = read_all(leader)
    os.close(leader)
    assert worker.returncode == 0
    assert [json.loads(line)["status"] for line in out.splitlines()] == ["acked"] * 3
    assert "1 done, 2 remaining" in terminal


def test_drain_without_a_terminal_prints_nothing_on_stderr(cli):
    cli.add("q", 1, 2)
    result = cli("queue", "exec", "q", "--", "true")
    assert result.returncode == 0
    assert result.stderr == ""


def test_stats_watch_draws_a_table_on_a_terminal(cli):
    cli.add("emails", 1)
    leader, follower = pty.openpty()
    watcher = subprocess.Popen(
        [LOCALQUEUE, *cli.store_args(("queue", "stats", "--watch", "--interval", "0.05"))],
        stdout=subprocess.PIPE,
        stderr=follower,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    os.close(follower)
    try:
        first = json.loads(watcher.stdout.readline())  # piped stdout still gets data
        screen = b""
        while b"emails" not in screen:
            screen += os.read(leader, 4096)
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
        os.close(leader)
    assert first == {
        "queue": "emails", "ready": 1, "delayed": 0, "inflight": 0, "dead": 0, "total": 1,
        "paused": False,
        "max_inflight": None,
        "rate": None,
        "per_group": None,
        "held": 0,
    }  # fmt: skip
    assert b"queue" in screen and b"ready" in screen


@pytest.mark.parametrize(("answer", "code", "left"), [("y\n", 0, 0), ("n\n", 1, 2)])
def test_purge_asks_on_a_terminal(cli, answer, code, left):
    cli.add("q", 1, 2)
    leader, follower = pty.openpty()
    purge = subprocess.Popen(
        [LOCALQUEUE, *cli.store_args(("queue", "purge", "q"))],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=follower,
        text=True,
    )
    os.close(follower)
    prompt = b""
    while b"[y/N]" not in prompt:
        prompt += os.read(leader, 4096)
    os.write(leader, answer.encode())
    out, _ = purge.communicate(timeout=60)
    os.close(leader)
    assert purge.returncode == code
    assert cli.stats("q")["total"] == left
    if code == 0:
        assert json.loads(out) == {"queue": "q", "purged": 2}


def _on_a_terminal(cli, *args):
    """Run ``localqueue ARGS`` with stdout on a pseudo-terminal; what it showed there."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [LOCALQUEUE, *cli.store_args(args)],
        stdout=follower,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    os.close(follower)
    screen = read_all(leader)
    os.close(leader)
    assert process.wait(timeout=60) == 0, process.stderr.read() if process.stderr else ""
    return screen


def test_stats_of_every_queue_is_a_table_on_a_terminal_and_json_when_piped(cli):
    cli.add("emails", 1, 2)
    cli.json("queue", "add", "hooks", "--value", "1", "--delay", "60")
    screen = _on_a_terminal(cli, "queue", "stats").replace("\r\n", "\n")
    lines = screen.splitlines()
    header = ["queue", "ready", "delayed", "inflight", "dead", "total", "oldest", "ready"]
    assert lines[0].split() == header
    assert lines[1].split()[:6] == ["emails", "2", "0", "0", "0", "2"]
    assert lines[1].endswith("s ago")  # seconds: the oldest ready message's age
    assert lines[2].split() == ["hooks", "0", "1", "0", "0", "1", "-"]
    piped = cli.json("queue", "stats")  # not a terminal: JSON Lines, times stay numbers
    assert [line["queue"] for line in piped] == ["emails", "hooks"]
