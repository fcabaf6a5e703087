"""``localqueue queue exec``: run an external command on each message."""

import contextlib
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from localqueue._signals import start_quietly
from localqueue.cli.child import KILL_GRACE, Job, run_child, seal_descriptors
from localqueue.cli.exit_codes import UsageError
from localqueue.cli.help import Command
from localqueue.cli.reaper import Watchdog
from localqueue.cli.worker import WorkerFlags
from localqueue.codec import MAX_VALUE_BYTES, decode_input, encode, validate_queue_name
from localqueue.history import Deferred

if TYPE_CHECKING:
    from localqueue.cli.child import ChildResult
    from localqueue.message import QueueMessage

OUTPUT_MODES = ("stderr", "discard", "json")
DEFAULT_OUTPUT_LIMIT = 64 * 1024

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
a second one kills them, releases their messages without spending their retry budget
and exits 130. Each job's output is shown under a header line naming its message."""


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
        *,
        output: str = "stderr",
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
        to: bool = False,
    ) -> None:
        self.argv, self.timeout, self.executable = argv, timeout, executable
        self.watchdog = watchdog
        self.output, self.output_limit, self.to = output, output_limit, to
        self.base_env = dict(os.environ)
        # Per delivery (message id, lease token): a message leased again while its
        # earlier job still runs must not share that job's entry.
        self._jobs: dict[tuple[str, str | None], Job] = {}
        self._stopped: set[tuple[str, str | None]] = set()  # deliveries asked to stop
        # Per delivery whose job exited 0: its exit code and output, for job_report.
        self._reports: dict[tuple[str, str | None], tuple[int, Deferred]] = {}
        self._lock = threading.Lock()
        self._show_lock = threading.Lock()
        self._sealed = False  # seal_descriptors() runs before this handler's first job
        #: Set by the worker loop when this handler runs in its thread: called once a
        #: job has started, so the loop can settle while the job runs.
        self.started: Callable[[], object] | None = None

    def __call__(self, message: "QueueMessage") -> Any:
        """None, or with ``to`` the values the job printed, or with ``--output json``
        its stdout (a JSON value, else text). A job stopped by :meth:`cancel` raises
        :class:`~localqueue.worker.Cancelled` unless it had exited 0."""
        from localqueue.worker import Cancelled, JobFailed

        delivery = (message.id, message.lease_token)
        argv, timeout = self.argv, self.timeout
        env = {
            **self.base_env,
            "LOCALQUEUE_MESSAGE_ID": message.id,
            "LOCALQUEUE_QUEUE": message.queue,
            "LOCALQUEUE_ATTEMPT": str(message.attempts),
        }

        with self._lock:
            if not self._sealed:
                seal_descriptors()
                self._sealed = True

        def on_start(job: Job | None) -> None:
            with self._lock:
                if job is None:
                    self._jobs.pop(delivery, None)
                    return
                self._jobs[delivery] = job
                stop = delivery in self._stopped  # asked to stop before it had a job
            if stop:
                self._stop(delivery, job, force=False)
            elif self.started is not None:
                self.started()

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
                keep=MAX_VALUE_BYTES + 1 if self.to else self.output_limit,
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
        with self._lock:
            stopped = delivery in self._stopped
            self._stopped.discard(delivery)
        self._show(message, result)
        if stopped and result.exit_code != 0:
            raise Cancelled(f"{argv[0]} was stopped (exit status {result.exit_code})")
        if result.exit_code == 0:
            value = None
            if self.to:
                value = job_values(result)  # may fail the attempt: no report then
            elif self.output == "json":
                value = _output_value(result.output, result.stdout_bytes)
            # Worked out only if the queue keeps a history (the store writes a record).
            kept = Deferred(functools.partial(kept_output, result, self.output_limit))
            with self._lock:
                self._reports[delivery] = (0, kept)
            return value
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

    def job_report(self, message: "QueueMessage") -> tuple[int | None, Any]:
        """The exit code and output (a :class:`~localqueue.history.Deferred`) of this
        delivery's job that exited 0, for its history record, and forgets them: the
        worker engine asks once, when it acks, or when the delivery's lease was lost."""
        with self._lock:
            return self._reports.pop((message.id, message.lease_token), (None, None))

    def _show(self, message: "QueueMessage", result: "ChildResult") -> None:
        """Write what the job printed to the worker's stderr, all of one job together
        (never mixed with another job's under -j N): stdout and stderr by default, only
        stderr when stdout is the outcome's (--output json) or the next stage's (--to).
        With the default --output stderr, a header line first says whose output it is."""
        if self.output == "discard":
            return
        shown = [(result.errors, result.stderr_bytes)]
        if self.output == "stderr" and not self.to:
            shown.insert(0, (result.output, result.stdout_bytes))
        block = b"".join(_with_newline(data, total) for data, total in shown if total)
        if not block:
            return
        if self.output == "stderr":
            header = (
                f"localqueue: output of {message.id} (attempt {message.attempts},"
                f" exit status {result.exit_code}):\n"
            )
            block = header.encode() + block
        with self._show_lock, contextlib.suppress(OSError, ValueError):
            sys.stderr.buffer.write(block)
            sys.stderr.flush()

    def cancel(self, message: "QueueMessage", force: bool) -> None:
        """Stop this delivery's job: SIGKILL its process group with ``force``, else
        SIGTERM it now and SIGKILL it if it is still running after the grace."""
        delivery = (message.id, message.lease_token)
        with self._lock:
            job = self._jobs.get(delivery)
            self._stopped.add(delivery)  # (no job yet: it is stopped as it starts)
        if job is not None:
            self._stop(delivery, job, force)

    def _stop(self, delivery: tuple[str, str | None], job: Job, force: bool) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(job.pid, signal.SIGKILL if force else signal.SIGTERM)
        if not force:
            timer = threading.Timer(KILL_GRACE, self._kill_if_running, (delivery, job))
            timer.daemon = True
            start_quietly(timer)

    def _kill_if_running(self, delivery: tuple[str, str | None], job: Job) -> None:
        with self._lock:
            running = self._jobs.get(delivery) is job
        if running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(job.pid, signal.SIGKILL)


def kept_output(result: "ChildResult", limit: int) -> dict[str, Any]:
    """What a history record keeps of a job's output: the tail of its stdout and of its
    stderr (at most ``limit`` bytes each, and at most the tail the child runner keeps),
    and how many bytes each stream had, so that ``queue log`` can say what was cut."""
    kept: dict[str, Any] = {}
    for name, text, total in (
        ("stdout", result.stdout, result.stdout_bytes),
        ("stderr", result.stderr, result.stderr_bytes),
    ):
        tail = text.encode()[-limit:] if limit else b""
        kept[name] = tail.decode("utf-8", "replace")
        kept[f"{name}_bytes"] = total
    return kept


def _with_newline(data: bytes, total: int) -> bytes:
    if len(data) < total:
        data += f"\n[localqueue: {total - len(data)} more bytes not shown]".encode()
    return data if data.endswith(b"\n") else data + b"\n"


def _output_value(data: bytes, total: int) -> Any:
    """The job's stdout for ``--output json``: one JSON value as itself, else text; cut
    at ``--output-limit`` with the cut said at the end."""
    text = data.decode("utf-8", "replace")
    if len(data) < total:
        return f"{text}[... {total - len(data)} more bytes]"
    try:
        return decode_input(data)
    except ValueError:
        return text


def job_values(result: "ChildResult") -> list[Any]:
    """The JSON values a job printed, one per non-blank line (``--to``); a line that is
    not JSON fails the attempt, naming it."""
    from localqueue.worker import JobFailed

    def failed(text: str) -> JobFailed:
        return JobFailed(
            {
                "type": "InvalidJobOutput",
                "module": None,
                "message": text,
                "stdout": result.stdout,
                "stderr": result.stderr,
            }
        )

    if result.stdout_bytes > len(result.output):
        raise failed(f"the job printed more than {MAX_VALUE_BYTES} bytes for the next queue")
    values = []
    for number, line in enumerate(result.output.splitlines(), 1):
        if not line.strip():
            continue
        try:
            values.append(decode_input(line))
        except ValueError as exc:
            raise failed(f"line {number} of the job's stdout is not JSON: {exc}") from None
    return values


def run(
    name: str,
    command: list[str],
    timeout: float | None,
    flags: "WorkerFlags",
    *,
    output: str = "stderr",
    output_limit: int = DEFAULT_OUTPUT_LIMIT,
) -> None:
    """The behaviour of ``queue exec``."""
    from localqueue.cli.common import check_seconds
    from localqueue.cli.worker import serve

    validate_queue_name(name)
    flags.check()
    if timeout is not None and check_seconds("--timeout", timeout) == 0:
        raise UsageError("--timeout must be > 0")
    if output not in OUTPUT_MODES:
        raise UsageError(f"--output must be one of {', '.join(OUTPUT_MODES)}, got {output!r}")
    if output == "json" and flags.to is not None:
        raise UsageError("--output json and --to both want the job's stdout: choose one")
    if output_limit < 0:
        raise UsageError(f"--output-limit must be >= 0, got {output_limit}")
    executable = check_command(command)
    # Started with SIGCHLD ignored (inherited across exec), the kernel would reap the jobs
    # itself and their exit statuses would be lost: a failed job must not look like one.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    watchdog = Watchdog.start()  # before the store or any thread exists: it forks
    handler = Handler(
        command, timeout, executable, watchdog,
        output=output, output_limit=output_limit, to=flags.to is not None,
    )  # fmt: skip
    serve(name, handler, flags, takes_message=True, show_output=output == "json")


class ExecCommand(Command):
    """``queue exec`` without ``--``: an option after the command's name is most likely
    the command's own (``queue exec q sh -c ...``), which the worker would take (or
    refuse) as its own: a usage error saying where ``--`` goes. With ``--`` and no NAME
    before it (``queue exec -- cat``), Click would take the command for NAME and say the
    command is missing: a usage error saying NAME is."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        dashdash = "--" in args
        takes_value = {
            opt
            for param in self.params
            if not getattr(param, "is_flag", False)
            for opt in getattr(param, "opts", ())
        }
        positionals = 0
        after_value = False
        for arg in args[: args.index("--")] if dashdash else args:
            if after_value:
                after_value = False
            elif arg in ctx.help_option_names:
                break  # --help: Click shows it, whatever else is there
            elif arg.startswith("-") and arg != "-":
                if positionals >= 2 and not dashdash:
                    raise UsageError(
                        f"{arg!r} after the command: put -- before the command, as in"
                        " `queue exec NAME [OPTIONS] -- CMD [ARGS...]`"
                    )
                after_value = arg in takes_value
            else:
                positionals += 1
        else:
            if dashdash and positionals == 0:
                raise UsageError(
                    "missing NAME before --: `queue exec NAME [OPTIONS] -- CMD [ARGS...]`"
                )
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
        output: Annotated[
            str,
            typer.Option(
                "--output",
                metavar="stderr|discard|json",
                help="What becomes of a job's output: stdout and stderr to the worker's"
                " stderr, each job's together (stderr); dropped (discard); stdout in the"
                ' outcome line as "output" (json, a JSON value or text).',
            ),
        ] = "stderr",
        output_limit: Annotated[
            int,
            typer.Option(
                "--output-limit",
                metavar="BYTES",
                help='Bytes of a job\'s stdout and stderr shown or put in "output";'
                " the rest is cut, and the cut said.",
            ),
        ] = DEFAULT_OUTPUT_LIMIT,
        to: o.To = None,
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
        strict: Annotated[bool, o.strict()] = False,
    ) -> None:
        flags = WorkerFlags(
            concurrency=concurrency, max_jobs=max_jobs, forever=forever, block=block,
            worker_id=worker_id, max_tries=max_tries, backoff=backoff,
            release_delay=release_delay, max_delay=max_delay, no_dead_letter=no_dead_letter,
            idle_sleep=idle_sleep, lease_timeout=lease_timeout, store_path=store_path,
            retry_store_path=retry_store_path, durability=durability, to=to, strict=strict,
        )  # fmt: skip
        run(name, command, timeout, flags, output=output, output_limit=output_limit)
