"""``localqueue queue process``: run a Python ``module:function`` on each message."""

import contextlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

if TYPE_CHECKING:
    import typer

    from localqueue.cli.worker import WorkerFlags

HELP = """Handle messages with a Python function: HANDLER is module:function (importable
from the current directory, like `python -m`) or path/to/file.py:function (the file is
imported by path; an unimportable handler exits 2 with the import error's message),
called with the message value; an async def function runs on an event loop. Returning
acks the message; raising releases it for another attempt (after the retry wait) until
--max-tries attempts are spent, then dead-letters it. -j N runs up to N calls at once
(threads; tasks on one event loop for an async function). What the handler prints goes
to stderr: stdout carries one JSON line per handled message: {"id", "queue", "status":
"acked"|"released"|"dead", "attempts", "error", "finished_at", "duration"}.

Without --forever or --block, handles what is ready and exits (cron mode): 0 when every
message was acked, 5 when one was dead-lettered, 6 when some were released for a later
attempt. SIGINT or SIGTERM: start nothing more, let the running calls finish, exit 0; a
second one releases their messages without spending their retry budget and exits 130."""


def load_handler(spec: str) -> Callable[[Any], Any]:
    """``module:function`` or ``path/to/file.py:function`` (see cli/handlers.py)."""
    from localqueue.cli.handlers import load_handler as load

    return load(spec)


def run(name: str, handler: str, flags: "WorkerFlags") -> None:
    """The behaviour of ``queue process``: what the handler prints goes to stderr, so
    that stdout carries only the worker's JSON lines."""
    from localqueue.cli.worker import serve
    from localqueue.codec import validate_queue_name

    validate_queue_name(name)
    flags.check()
    function = load_handler(handler)
    stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        serve(name, function, flags, stdout=stdout)


def register(group: "typer.Typer") -> None:
    import typer

    from localqueue.cli import options as o
    from localqueue.cli.worker import WorkerFlags

    @group.command("process", help=HELP)
    def process(
        name: Annotated[str, o.queue_name()],
        handler: Annotated[
            str,
            typer.Argument(
                metavar="HANDLER",
                help="Python handler as module:function or path/to/file.py:function.",
            ),
        ],
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
        run(name, handler, flags)
