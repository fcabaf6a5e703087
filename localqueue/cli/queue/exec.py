"""``localqueue queue exec``: run an external command on each message."""

import contextlib
import os
import signal
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer

from localqueue._signals import start_quietly
from localqueue.cli.child import KILL_GRACE, Job, run_child
from localqueue.cli.exit_codes import UsageError
from localqueue.cli.help import Command
from localqueue.cli.reaper import Watchdog
from localqueue.cli.worker import WorkerFlags
from localqueue.codec import encode, validate_queue_name

if TYPE_CHECKING:
    from localqueue.message import QueueMessage

HELP = """Handle messages with an external command, run without a shell: the value is on
its stdin as one JSON line (all of it, before the command starts), and
LOCALQUEUE_MESSAGE_ID, LOCALQUEUE_QUEUE and LOCALQUEUE_ATTEMPT (1 on first delivery) are
in its environment. Exit status 0 acks the message; anything else is a failure (released
for another attempt after the retry wait, dead-lettered once --max-tries attempts are
spent) whose last_error keeps the command, exit_code and the last 4 KiB of its stdout and
stderr. --timeout kills the command's process group (exit_code 124). -j N runs up to N
commands at once. One JSON line per handled message, as for `queue process`, written as
each one finishes. The command is looked up on PATH once, when the worker starts.

Without --forever or --block, handles what is ready and exits (cron mode): 0 when every
message was acked, 5 when one was dead-lettered, 6 when some were released for a later
attempt. SIGINT or SIGTERM: start nothing more, let the running commands finish, exit 0;
a second one kills them, releases their messages without spending an attempt and exits
130."""


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
    """Runs one message's command; the worker engine calls it from its ``-j`` slots.
    Exit status 0 returns; anything else raises :class:`~localqueue.JobFailed` with the
    command's record (``last_error``). :meth:`cancel` stops a message's running job."""

    def __init__(
        self,
        argv: list[str],
        timeout: float | None,
        executable: str | None,
        watchdog: "Watchdog | None" = None,
    ) -> None:
        self.argv, self.timeout, self.executable = argv, timeout, executable
        self.watchdog = watchdog
        self.base_env = dict(os.environ)
        self._jobs: dict[str, Job] = {}  # message id -> its running job
        self._lock = threading.Lock()

    def __call__(self, message: "QueueMessage") -> None:
        from localqueue.worker import JobFailed

        argv, timeout = self.argv, self.timeout
        env = {
            **self.base_env,
            "LOCALQUEUE_MESSAGE_ID": message.id,
            "LOCALQUEUE_QUEUE": message.queue,
            "LOCALQUEUE_ATTEMPT": str(message.attempts),
        }

        def on_start(job: Job | None) -> None:
            with self._lock:
                if job is None:
                    self._jobs.pop(message.id, None)
                else:
                    self._jobs[message.id] = job

        try:
            payload = encode(message.value) + b"\n"
            result = run_child(
                argv,
                payload,
                env,
                timeout,
                executable=self.executable,
                watchdog=self.watchdog,
                on_start=on_start,
            )
        except OSError as exc:  # vanished since the check, not executable, bad format...
            missing = isinstance(exc, FileNotFoundError)
            raise JobFailed(
                {
                    "type": "CommandFailed",
                    "module": None,
                    "message": f"cannot run {argv[0]}: {exc.strerror or exc}",
                    "command": list(argv),
                    "exit_code": 127 if missing else 126,  # as a shell reports it
                    "stdout": "",
                    "stderr": "",
                }
            ) from None
        if result.exit_code == 0:
            return
        if result.timed_out:
            kind, text = "CommandTimedOut", f"{argv[0]} timed out after {timeout:g}s"
        else:
            kind, text = "CommandFailed", f"{argv[0]} exited with status {result.exit_code}"
        raise JobFailed(
            {
                "type": kind,
                "module": None,
                "message": text,
                "command": list(argv),
                "exit_code": result.exit_code,
                "stdout": result.stdout,
                "stderr": result.stderr,
            }
        )

    def cancel(self, message: "QueueMessage", force: bool) -> None:
        """Stop ``message``'s job: SIGKILL its process group with ``force``, else
        SIGTERM it now and SIGKILL it if it is still running after the grace."""
        with self._lock:
            job = self._jobs.get(message.id)
        if job is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(job.pid, signal.SIGKILL if force else signal.SIGTERM)
        if not force:
            timer = threading.Timer(KILL_GRACE, self._kill_if_running, (message.id, job))
            timer.daemon = True
            start_quietly(timer)

    def _kill_if_running(self, message_id: str, job: Job) -> None:
        with self._lock:
            running = self._jobs.get(message_id) is job
        if running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(job.pid, signal.SIGKILL)


def run(name: str, command: list[str], timeout: float | None, flags: "WorkerFlags") -> None:
    """The behaviour of ``queue exec``."""
    from localqueue.cli.common import check_seconds
    from localqueue.cli.worker import serve

    validate_queue_name(name)
    flags.check()
    if timeout is not None and check_seconds("--timeout", timeout) == 0:
        raise UsageError("--timeout must be > 0")
    executable = check_command(command)
    # Started with SIGCHLD ignored (inherited across exec), the kernel would reap the jobs
    # itself and their exit statuses would be lost: a failed job must not look like one.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    watchdog = Watchdog.start()  # before the store or any thread exists: it forks
    serve(name, Handler(command, timeout, executable, watchdog), flags, takes_message=True)


class ExecCommand(Command):
    """``queue exec`` without ``--``: an option after the command's name is most likely
    the command's own (``queue exec q sh -c ...``), which the worker would take (or
    refuse) as its own: a usage error saying where ``--`` goes."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if "--" not in args:
            takes_value = {
                opt
                for param in self.params
                if not getattr(param, "is_flag", False)
                for opt in getattr(param, "opts", ())
            }
            positionals = 0
            after_value = False
            for arg in args:
                if after_value:
                    after_value = False
                elif arg.startswith("-") and arg != "-":
                    if positionals >= 2:
                        raise UsageError(
                            f"{arg!r} after the command: put -- before the command, as in"
                            " `queue exec NAME [OPTIONS] -- CMD [ARGS...]`"
                        )
                    after_value = arg in takes_value
                else:
                    positionals += 1
        result: list[str] = super().parse_args(ctx, args)
        return result


def register(group: typer.Typer) -> None:
    from localqueue.cli import options as o

    @group.command("exec", help=HELP, cls=ExecCommand)
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
        concurrency: o.Concurrency = 1,
        max_jobs: o.MaxJobs = None,
        forever: o.Forever = False,
        block: o.Block = False,
        worker_id: o.WorkerId = None,
        max_tries: o.MaxTries = 3,
        backoff: o.Backoff = "exponential",
        release_delay: o.ReleaseDelay = 1.0,
        max_delay: o.MaxDelay = 300.0,
        no_dead_letter: o.NoDeadLetter = False,
        idle_sleep: o.IdleSleep = None,
        lease_timeout: o.LeaseTimeout = None,
        store_path: o.StorePath = None,
        retry_store_path: o.RetryStorePath = None,
        durability: o.Durability = None,
    ) -> None:
        flags = WorkerFlags(
            concurrency=concurrency, max_jobs=max_jobs, forever=forever, block=block,
            worker_id=worker_id, max_tries=max_tries, backoff=backoff,
            release_delay=release_delay, max_delay=max_delay, no_dead_letter=no_dead_letter,
            idle_sleep=idle_sleep, lease_timeout=lease_timeout, store_path=store_path,
            retry_store_path=retry_store_path, durability=durability,
        )  # fmt: skip
        run(name, command, timeout, flags)
