"""``localqueue queue peek``: look at messages without leasing them."""

from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    import typer

HELP = """Print the queue's messages, highest priority first and in enqueue order within
one priority, one JSON line each, without leasing or changing them: --state
ready|delayed|inflight|dead selects one state (default all), --limit N at most N."""

STATES = ("all", "ready", "delayed", "inflight", "dead")


def run(
    name: str,
    state: str = "all",
    limit: int | None = None,
    store_path: str | None = None,
    strict: bool = False,
) -> None:
    from localqueue.cli.common import emit_raw, open_queue, settings
    from localqueue.cli.exit_codes import UsageError
    from localqueue.codec import dumps_line

    state = state.lower()
    if state not in STATES:
        raise UsageError(f"--state must be one of {'|'.join(STATES)}, got {state!r}")
    if limit is not None and limit < 0:
        raise UsageError(f"--limit must be >= 0, got {limit}")
    with open_queue(name, settings(strict=strict or None, store_path=store_path)) as queue:
        messages = queue.peek(None if state == "all" else state, limit)
    emit_raw(b"".join(dumps_line(m.to_dict()) for m in messages))


def register(group: "typer.Typer") -> None:
    import typer

    from localqueue.cli import options

    @group.command("peek", help=HELP)
    def peek(
        name: Annotated[str, options.queue_name()],
        state: Annotated[
            str,
            typer.Option("--state", metavar="|".join(STATES), help="Only messages in this state."),
        ] = "all",
        limit: Annotated[
            int | None,
            typer.Option("--limit", "-n", metavar="N", help="Print at most N.", show_default=False),
        ] = None,
        store_path: Annotated[str | None, options.store_path()] = None,
        strict: Annotated[bool, options.strict()] = False,
    ) -> None:
        run(name, state, limit, store_path, strict=strict)
