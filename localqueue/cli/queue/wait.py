"""``localqueue queue wait``: block until a queue has no pending work."""

import time

TYPE_CHECKING = False  # typing costs start-up time on the fast path

if TYPE_CHECKING:
    import typer

HELP = """Wait until nothing in the queue is ready, delayed or inflight (dead letters do
not count), then exit 0; exit 3 when --timeout elapses first (saying so when the queue
is paused with messages ready, or a limit holds them back). For Makefile and CI steps
that must wait for workers to finish."""

_POLL_MIN, _POLL_MAX = 0.01, 0.25


def run(
    name: str,
    timeout: float | None = None,
    store_path: str | None = None,
    strict: bool = False,
) -> None:
    from localqueue.cli.common import check_seconds, open_queue, settings
    from localqueue.cli.exit_codes import EMPTY, CliError

    if timeout is not None:
        check_seconds("--timeout", timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = _POLL_MIN
    with open_queue(name, settings(strict=strict or None, store_path=store_path)) as queue:
        while True:
            stats = queue.stats()
            pending = stats.ready + stats.delayed + stats.inflight
            if pending == 0:
                return
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                why = ""
                reason, held = queue.store.held_back(name) if stats.ready else (None, 0)
                if reason == "paused":
                    why = f" (the queue is paused: `localqueue queue resume {name}`)"
                elif reason is not None:
                    flag = "--" + reason.replace("_", "-")
                    why = f" ({held} ready held back by its limit {flag}: `queue limit {name}`)"
                raise CliError(
                    f"timed out after {timeout:g}s: {pending} messages of {name!r}"
                    f" still pending{why}",
                    EMPTY,
                )
            time.sleep(pause if deadline is None else min(pause, deadline - now))
            pause = min(pause * 2, _POLL_MAX)


def register(group: "typer.Typer") -> None:
    from typing import Annotated

    import typer

    from localqueue.cli import options

    @group.command("wait", help=HELP)
    def wait(
        name: Annotated[str, options.queue_name()],
        timeout: Annotated[
            float | None,
            typer.Option(
                "--timeout",
                metavar="SECONDS",
                help="Give up (exit 3) after this long. Default: wait forever.",
                show_default=False,
            ),
        ] = None,
        store_path: Annotated[str | None, options.store_path()] = None,
        strict: Annotated[bool, options.strict()] = False,
    ) -> None:
        run(name, timeout, store_path, strict=strict)
