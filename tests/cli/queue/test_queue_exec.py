"""``queue exec``: external commands, stdin, environment, capture, timeouts, descriptors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.cli.conftest import LOCALQUEUE, SUBPROCESS, untimed

pytestmark = SUBPROCESS

PY = sys.executable


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(predicate, timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes (a bound, not a guess)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def exec_lines(cli, queue, *command, options=()):
    return cli.json("queue", "exec", queue, "--max-tries", "1", *options, "--", *command)


def test_exit_0_acks_and_the_value_arrives_as_json_on_stdin(cli, tmp_path):
    out = tmp_path / "seen.json"
    [added] = cli.add("q", {"to": "user@example.com", "n": [1, 2]})
    [line] = exec_lines(cli, "q", "sh", "-c", f'cat > "{out}"')
    assert untimed(line) == {
        "id": added,
        "queue": "q",
        "status": "acked",
        "attempts": 1,
        "error": None,
    }
    assert json.loads(out.read_text()) == {"to": "user@example.com", "n": [1, 2]}
    assert cli.stats("q")["total"] == 0


def test_environment_names_the_message_queue_and_attempt(cli):
    [added] = cli.add("q", 1)
    script = 'echo "$LOCALQUEUE_MESSAGE_ID $LOCALQUEUE_QUEUE $LOCALQUEUE_ATTEMPT"; exit 3'
    [line] = exec_lines(cli, "q", "sh", "-c", script)
    assert line["status"] == "dead"
    assert line["error"]["stdout"] == f"{added} q 1\n"


def test_failure_records_command_exit_code_and_output(cli):
    cli.add("q", 1)
    [line] = exec_lines(cli, "q", "sh", "-c", "echo out; echo err >&2; exit 7")
    error = line["error"]
    assert error["type"] == "CommandFailed"
    assert error["command"] == ["sh", "-c", "echo out; echo err >&2; exit 7"]
    assert error["exit_code"] == 7
    assert error["stdout"] == "out\n"
    assert error["stderr"] == "err\n"
    [dead] = cli.json("queue", "dead", "q")
    assert dead["last_error"] == error


def test_failures_are_retried_until_max_tries(cli):
    cli.add("q", 1)
    lines = cli.json(
        "queue", "exec", "q", "--max-tries", "2", "--release-delay", "0", "--", "false", code=5
    )
    assert [line["status"] for line in lines] == ["released", "dead"]
    assert [line["attempts"] for line in lines] == [1, 2]


def test_captured_output_is_bounded_to_the_last_4_kib(cli):
    cli.add("q", 1)
    script = "head -c 20000000 /dev/zero | tr '\\0' x; echo END; exit 1"
    [line] = exec_lines(cli, "q", "sh", "-c", script)
    stdout = line["error"]["stdout"]
    assert len(stdout) == 4096
    assert stdout.endswith("xEND\n")


def test_child_that_never_reads_stdin_and_a_4_mib_value(cli):
    big = "x" * (4 * 1024 * 1024)
    cli.json("queue", "add", "q", "--raw", stdin=big + "\n")
    [line] = exec_lines(cli, "q", "true")
    assert line["status"] == "acked"
    cli.json("queue", "add", "q", "--raw", stdin=big + "\n")
    [line] = exec_lines(cli, "q", "sh", "-c", "wc -c")
    assert line["status"] == "acked"


def test_timeout_kills_the_whole_process_group_and_records_124(cli, tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    cli.add("q", 1)
    script = f'sleep 60 & echo $! > "{pidfile}"; wait'
    [line] = exec_lines(cli, "q", "sh", "-c", script, options=("--timeout", "0.5"))
    assert line["status"] == "dead"
    assert line["error"]["type"] == "CommandTimedOut"
    assert line["error"]["exit_code"] == 124
    grandchild = int(pidfile.read_text())
    assert wait_until(lambda: not alive(grandchild)), "the grandchild survived the timeout"


def test_timeout_escalates_to_sigkill(cli):
    cli.add("q", 1)
    script = "trap '' TERM; sleep 60"
    [line] = exec_lines(cli, "q", "sh", "-c", script, options=("--timeout", "0.2"))
    assert line["error"]["exit_code"] == 124


def test_no_store_descriptor_leaks_into_the_child(cli):
    cli.add("q", 1)
    [line] = exec_lines(cli, "q", "sh", "-c", "ls -l /proc/$$/fd; exit 1")
    listing = line["error"]["stdout"]
    assert "q.sqlite3" not in listing
    assert "r.sqlite3" not in listing


def test_the_job_gets_only_stdin_stdout_and_stderr(cli, tmp_path):
    """Not the LMDB store's files (LMDB leaves its data file inheritable), nor a
    descriptor the worker itself inherited."""
    store = f"lmdb://{tmp_path / 'lmdb'}"
    cli("queue", "add", "q", "--value", "1", "--store-path", store, store=False)
    inherited_r, inherited_w = os.pipe()
    try:
        result = cli(
            "queue", "exec", "q", "--max-tries", "1", "--store-path", store,
            "--retry-store-path", str(cli.retries), "--", "sh", "-c", "ls /proc/$$/fd; exit 1",
            store=False, pass_fds=(inherited_r,),
        )  # fmt: skip
    finally:
        os.close(inherited_r)
        os.close(inherited_w)
    assert result.returncode == 5, result.stderr  # the job failed: dead-lettered
    [line] = [json.loads(text) for text in result.stdout.splitlines()]
    assert line["error"]["stdout"].split() == ["0", "1", "2"]


def test_a_job_gets_its_stdin_even_when_the_worker_has_none():
    """With the worker's stdin closed, its first pipe end would be descriptor 0, which the
    job's own stdin then replaces: the job must still read the value."""
    code = (
        "import os, sys\n"
        "os.close(0)\n"
        "from localqueue.cli.child import run_child\n"
        "result = run_child(['cat'], b'value', dict(os.environ))\n"
        "print(result.exit_code, result.stdout)\n"
    )
    result = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.stdout == "0 value\n", result.stderr


def test_exit_statuses_are_read_even_if_the_worker_starts_with_sigchld_ignored(cli):
    """An ignored SIGCHLD survives exec; left so, the kernel reaps the jobs and their
    statuses are gone. The worker restores it: a failing job is reported as failing."""
    cli.add("q", 1)
    argv = cli.store_args(("queue", "exec", "q", "--max-tries", "1", "--", "sh", "-c", "exit 3"))
    result = subprocess.run(
        [LOCALQUEUE, *argv],
        cwd=cli.cwd,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN),
    )
    assert result.returncode == 5, result.stderr  # dead-lettered: the failure was seen
    [line] = [json.loads(text) for text in result.stdout.splitlines()]
    assert line["status"] == "dead"
    assert line["error"]["exit_code"] == 3


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")
def test_the_job_does_not_inherit_pythons_ignored_signals(cli):
    """Python ignores SIGPIPE (and SIGXFSZ) for itself; an ignored signal survives exec,
    so a job would get EPIPE errors where a shell pipeline expects to die quietly."""
    cli.add("q", 1)
    [line] = exec_lines(cli, "q", "sh", "-c", "grep SigIgn /proc/self/status; exit 1")
    ignored = int(line["error"]["stdout"].split()[1], 16)
    for signum in (signal.SIGPIPE, signal.SIGXFSZ):
        assert not ignored & (1 << (signum - 1)), signum


def test_child_runs_in_its_own_session(cli):
    cli.add("q", 1)
    code = "import os; print(os.getsid(0) == os.getpid()); raise SystemExit(1)"
    [line] = exec_lines(cli, "q", PY, "-c", code)
    assert line["error"]["stdout"] == "True\n"


def test_killed_by_a_signal_is_128_plus_n(cli):
    cli.add("q", 1)
    [line] = exec_lines(cli, "q", "sh", "-c", "kill -KILL $$")
    assert line["error"]["exit_code"] == 128 + signal.SIGKILL


def test_a_background_grandchild_holding_the_pipes_does_not_stall_the_worker(cli):
    cli.add("q", 1)
    [line] = exec_lines(cli, "q", "sh", "-c", "sleep 30 & exit 0")
    assert line["status"] == "acked"


@pytest.mark.parametrize("command", [["no-such-command-xyz"], ["./not-here.sh"], []])
def test_missing_command_is_a_usage_error_before_anything_is_leased(cli, command):
    cli.add("q", 1)
    result = cli("queue", "exec", "q", "--", *command)
    assert result.returncode == 2
    assert result.stderr.startswith("localqueue: error:")
    assert cli.stats("q")["ready"] == 1


@pytest.mark.parametrize("options", [[], ["--max-tries", "2"], ["--timeout=5", "-j", "2"]])
def test_a_missing_name_before_dashdash_is_named_not_taken_for_the_command(cli, options):
    cli.add("q", 1)
    result = cli("queue", "exec", *options, "--", "cat")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "localqueue: error: missing NAME before --: `queue exec NAME [OPTIONS] -- CMD [ARGS...]`\n"
    )
    assert cli.stats("q")["ready"] == 1
    assert cli("queue", "exec", "--help", "--", "cat").returncode == 0


def test_a_command_that_cannot_be_executed_is_a_failure_not_a_crash(cli, tmp_path):
    script = tmp_path / "garbage"
    script.write_bytes(b"\x00\x01\x02 not a program")
    script.chmod(0o755)
    cli.add("q", 1)
    [line] = exec_lines(cli, "q", str(script))
    assert line["status"] == "dead"
    assert line["error"]["exit_code"] == 126
    assert "cannot run" in line["error"]["message"]


def test_drains_many_messages_in_order(cli):
    ids = cli.add("q", *range(20))
    lines = cli.json("queue", "exec", "q", "--", "true")
    assert [line["id"] for line in lines] == ids
    assert {line["status"] for line in lines} == {"acked"}


def test_the_command_is_found_on_the_workers_path(cli, tmp_path):
    """Looked up as a shell would: the first executable file of that name on PATH,
    skipping a directory and a non-executable file that come earlier."""
    first, second, third = (tmp_path / name for name in ("a", "b", "c"))
    for directory in (first, second, third):
        directory.mkdir()
    (first / "job").mkdir()  # a directory named like the command
    (second / "job").write_text("#!/bin/sh\nexit 1\n")  # not executable
    (third / "job").write_text("#!/bin/sh\necho ran-from-c >&2\nexit 3\n")
    (third / "job").chmod(0o755)
    cli.add("q", 1)
    path = os.pathsep.join([str(first), str(second), str(third), os.environ["PATH"]])
    result = cli(
        "queue", "exec", "q", "--max-tries", "1", "--", "job", env={**os.environ, "PATH": path}
    )
    [line] = [json.loads(text) for text in result.stdout.splitlines()]
    assert line["error"]["exit_code"] == 3
    assert line["error"]["command"] == ["job"]
    assert line["error"]["stderr"] == "ran-from-c\n"


def test_find_executable_answers_as_shutil_which_does(tmp_path, monkeypatch):
    import shutil

    from localqueue.cli.child import find_executable

    tool = tmp_path / "bin" / "tool"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    (tmp_path / "plain").write_text("")
    monkeypatch.chdir(tmp_path)
    for path in (
        f"{tool.parent}{os.pathsep}/usr/bin",
        f"/nowhere{os.pathsep}{tool.parent}",
        "/usr/bin",
    ):
        monkeypatch.setenv("PATH", path)
        for command in ("tool", "sh", str(tool), "./bin/tool", "./plain", "bin", "no-such-tool"):
            assert find_executable(command) == shutil.which(command), (path, command)
    (tmp_path / "here").write_text("#!/bin/sh\n")
    (tmp_path / "here").chmod(0o755)
    for path in ("", os.pathsep):  # PATH="" finds nothing; ":" looks in the directory
        monkeypatch.setenv("PATH", path)
        assert find_executable("here") == shutil.which("here")
    monkeypatch.delenv("PATH")
    assert find_executable("sh") == shutil.which("sh")


def test_a_worker_on_a_queue_the_store_never_held_warns_and_strict_refuses(cli):
    cli.add("emails", 1)
    typo = cli("queue", "exec", "emials", "--", "true")
    assert typo.returncode == 0 and typo.stdout == ""
    assert "warning: no queue 'emials'" in typo.stderr and "(queues: emails)" in typo.stderr
    strict = cli("queue", "process", "emials", "tests_handlers:ok", "--strict")
    assert strict.returncode == 4
    assert "error: no queue 'emials'" in strict.stderr
    assert cli.stats("emails")["ready"] == 1  # nothing was touched
