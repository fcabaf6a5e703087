"""``localqueue queue process``: run a Python ``module:function`` on each message."""

import contextlib
import importlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from localqueue.cli.exit_codes import UsageError

if TYPE_CHECKING:
    import typer

    from localqueue.cli.worker import WorkerFlags

HELP = """Handle messages with a Python function: HANDLER is module:function (importable
from the current directory, like `python -m`), called with the message value; an async
def function runs on an event loop. Returning acks the message; raising releases it for
another attempt (after the retry wait) until --max-tries attempts are spent, then
dead-letters it. -j N runs up to N calls at once (threads; tasks on one event loop for
an async function). What the handler prints goes to stderr: stdout carries one JSON line
per handled message: {"id", "queue", "status": "acked"|"released"|"dead", "attempts",
"error"}.

Without --forever or --block, handles what is ready and exits (cron mode): 0 when every
message was acked, 5 when one was dead-lettered, 6 when some were released for a later
attempt. SIGINT or SIGTERM: start nothing more, let the running calls finish, exit 0; a
second one releases their messages without spending an attempt and exits 130."""


def load_handler(spec: str) -> Callable[[Any], Any]:
    """Import ``module:function`` (dotted attributes allowed) or raise a usage error."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"handler must be module:function, got {spec!r}")
    here = os.getcwd()
    if "" not in sys.path and here not in sys.path:
        sys.path.insert(0, here)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise UsageError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UsageError(f"{module_name!r} has no attribute {attribute!r}") from None
    if not callable(target):
        raise UsageError(f"{spec} is not callable")
    function: Callable[[Any], Any] = target
    return function


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
            str, typer.Argument(metavar="HANDLER", help="Python handler as module:function.")
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
    ) -> None:
        flags = WorkerFlags(
            concurrency=concurrency, max_jobs=max_jobs, forever=forever, block=block,
            worker_id=worker_id, max_tries=max_tries, backoff=backoff,
            release_delay=release_delay, max_delay=max_delay, no_dead_letter=no_dead_letter,
            idle_sleep=idle_sleep, lease_timeout=lease_timeout, store_path=store_path,
            retry_store_path=retry_store_path, durability=durability, to=to,
        )  # fmt: skip
        run(name, handler, flags)
