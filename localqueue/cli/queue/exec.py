"""``localqueue queue exec``: run an external command on each message."""

import os

from localqueue.cli.exit_codes import UsageError

TYPE_CHECKING = False  # typing costs the worker's start-up time; mypy still reads these
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    import typer

    from localqueue.message import QueueMessage

HELP = """Handle messages with an external command, run without a shell: the value is written
to its stdin as one JSON line, and LOCALQUEUE_MESSAGE_ID, LOCALQUEUE_QUEUE and
LOCALQUEUE_ATTEMPT (1 on first delivery) are in its environment. Exit status 0 acks the
message; anything else is a failure (released for another attempt, dead-lettered once
--max-tries attempts are spent) whose last_error keeps the command, exit_code and the last
4 KiB of its stdout and stderr. --timeout kills the command's process group (exit_code 124).
One JSON line per handled message, as for `queue process`. The command is looked up on
PATH once, when the worker starts.

Without --forever or --block, handles what is ready and exits 0 (cron mode). SIGINT or
SIGTERM: finish the current message, then exit 0; a second one kills the command,
releases the message and exits 130."""


def check_command(argv: list[str]) -> str:
    """The path ``argv[0]`` runs from (searched on PATH once, before leasing); a usage
    error unless it can be executed."""
    if not argv:
        raise UsageError("no command given: use `queue exec NAME -- CMD [ARGS...]`")
    from localqueue.cli.child import find_executable

    path = find_executable(argv[0])
    if path is None:
        raise UsageError(f"command not found or not executable: {argv[0]!r}")
    return path


class Handler:
    """Runs one message's command. ``started``, when the worker sets it, is called as
    soon as the command runs: the worker settles the previous message meanwhile."""

    def __init__(self, argv: list[str], timeout: float | None, executable: str | None) -> None:
        from localqueue.cli.child import run_child
        from localqueue.codec import encode

        self.argv, self.timeout, self.executable = argv, timeout, executable
        self.base_env = dict(os.environ)
        self.started: Callable[[], None] | None = None
        self._run_child, self._encode = run_child, encode

    def __call__(self, message: "QueueMessage") -> "dict[str, Any] | None":
        argv, timeout = self.argv, self.timeout
        env = {
            **self.base_env,
            "LOCALQUEUE_MESSAGE_ID": message.id,
            "LOCALQUEUE_QUEUE": message.queue,
            "LOCALQUEUE_ATTEMPT": str(message.attempts),
        }
        try:
            payload = self._encode(message.value) + b"\n"
            result = self._run_child(
                argv, payload, env, timeout, executable=self.executable, started=self.started
            )
        except OSError as exc:  # vanished since the check, not executable, bad format...
            missing = isinstance(exc, FileNotFoundError)
            return {
                "type": "CommandFailed",
                "module": None,
                "message": f"cannot run {argv[0]}: {exc.strerror or exc}",
                "command": list(argv),
                "exit_code": 127 if missing else 126,  # as a shell reports it
                "stdout": "",
                "stderr": "",
            }
        if result.exit_code == 0:
            return None
        if result.timed_out:
            kind, text = "CommandTimedOut", f"{argv[0]} timed out after {timeout:g}s"
        else:
            kind, text = "CommandFailed", f"{argv[0]} exited with status {result.exit_code}"
        return {
            "type": kind,
            "module": None,
            "message": text,
            "command": list(argv),
            "exit_code": result.exit_code,
            "stdout": result.stdout,
            "stderr": result.stderr,
        }


def run(name: str, command: list[str], timeout: float | None = None, **flags: "Any") -> None:
    """The behaviour of ``queue exec``; ``flags`` are the worker's other options by their
    flag names (no Typer here: the fast path calls it directly)."""
    from localqueue.cli.common import check_seconds
    from localqueue.cli.worker import prepare, serve

    options, stores = prepare(name, flags)
    if timeout is not None and check_seconds("--timeout", timeout) == 0:
        raise UsageError("--timeout must be > 0")
    executable = check_command(command)
    import signal

    from localqueue.cli import reaper

    # Started with SIGCHLD ignored (inherited across exec), the kernel would reap the jobs
    # itself and their exit statuses would be lost: a failed job must not look like one.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    reaper.start()  # before the store or any thread exists: it forks
    serve(name, Handler(command, timeout, executable), options, **stores)


def register(group: "typer.Typer") -> None:
    from typing import Annotated

    import typer

    from localqueue.cli import options as o

    @group.command("exec", help=HELP)
    def exec_(
        name: Annotated[str, o.queue_name()],
        command: Annotated[
            list[str],
            typer.Argument(
                metavar="-- CMD [ARGS...]", help="The command and its arguments, after --."
            ),
        ],
        timeout: Annotated[
            float | None,
            typer.Option(
                "--timeout",
                metavar="SECONDS",
                help="Kill the command (its whole process group) after this long.",
                show_default=False,
            ),
        ] = None,
        max_jobs: o.MaxJobs = None,
        forever: o.Forever = False,
        block: o.Block = False,
        worker_id: o.WorkerId = None,
        max_tries: o.MaxTries = 3,
        backoff: o.Backoff = "fixed",
        release_delay: o.ReleaseDelay = 0.0,
        max_delay: o.MaxDelay = 300.0,
        no_dead_letter: o.NoDeadLetter = False,
        idle_sleep: o.IdleSleep = 1.0,
        lease_timeout: o.LeaseTimeout = None,
        store_path: o.StorePath = None,
        retry_store_path: o.RetryStorePath = None,
        durability: o.Durability = None,
    ) -> None:
        run(
            name, command, timeout, max_jobs=max_jobs, forever=forever, block=block,
            worker_id=worker_id, max_tries=max_tries, backoff=backoff,
            release_delay=release_delay, max_delay=max_delay, no_dead_letter=no_dead_letter,
            idle_sleep=idle_sleep, lease_timeout=lease_timeout, store_path=store_path,
            retry_store_path=retry_store_path, durability=durability,
        )  # fmt: skip
