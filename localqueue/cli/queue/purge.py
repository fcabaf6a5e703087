"""``localqueue queue purge``: delete a queue's messages."""

import sys
from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    import typer

HELP = """Delete every message of the queue (inflight ones included), or only its dead
letters with --dead-only. Asks for confirmation on a terminal; elsewhere --yes is required.
Prints {"queue", "purged": N}."""


def run(
    name: str,
    dead_only: bool = False,
    yes: bool = False,
    store_path: str | None = None,
    durability: str | None = None,
    strict: bool = False,
) -> None:
    from localqueue.cli.common import emit, open_queue, settings
    from localqueue.cli.exit_codes import ERROR, CliError, UsageError
    from localqueue.codec import validate_queue_name

    validate_queue_name(name)
    what = "the dead letters" if dead_only else "every message"
    if not yes:
        if sys.stdin is None or not sys.stdin.isatty():
            raise UsageError(f"refusing to delete {what} of {name!r} without --yes")
        sys.stderr.write(f"Delete {what} of queue {name!r}? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            raise CliError("nothing deleted", ERROR)
    with open_queue(
        name, settings(strict=strict or None, store_path=store_path, durability=durability)
    ) as queue:
        emit({"queue": name, "purged": queue.purge(dead_only=dead_only)})


def register(group: "typer.Typer") -> None:
    import typer

    from localqueue.cli import options

    @group.command("purge", help=HELP)
    def purge(
        name: Annotated[str, options.queue_name()],
        dead_only: Annotated[
            bool, typer.Option("--dead-only", help="Delete only the dead letters.")
        ] = False,
        yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
        store_path: Annotated[str | None, options.store_path()] = None,
        durability: Annotated[str | None, options.durability()] = None,
        strict: Annotated[bool, options.strict()] = False,
    ) -> None:
        run(name, dead_only, yes, store_path, durability, strict=strict)
