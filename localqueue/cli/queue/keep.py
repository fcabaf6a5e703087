"""``localqueue queue keep``: set or show how long a queue's finished jobs are kept."""

from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    import typer

HELP = """Set or show how long the queue keeps its finished jobs. A history record of
each acked or dead-lettered message, with its output, is kept for DURATION (30s, 15m,
12h, 7d) after it finishes and/or only the newest --count N; --off keeps none (what
was kept is pruned away by the workers and store vacuum). Prints the setting:
{"queue", "keep_seconds", "keep_count"} (null: not set). Every worker reads it as it
settles; see queue history and queue log."""


def run(
    name: str,
    duration: str | None = None,
    count: int | None = None,
    off: bool = False,
    store_path: str | None = None,
    strict: bool = False,
) -> None:
    from localqueue.cli.common import emit, open_queue, settings
    from localqueue.cli.exit_codes import UsageError
    from localqueue.cli.history import parse_duration

    if off and (duration is not None or count is not None):
        raise UsageError("--off takes no DURATION nor --count")
    if count is not None and count < 1:
        raise UsageError(f"--count must be >= 1, got {count}")
    seconds = None if duration is None else parse_duration("DURATION", duration)
    with open_queue(name, settings(strict=strict or None, store_path=store_path)) as queue:
        if off or seconds is not None or count is not None:
            queue.keep(seconds, count)
        keep_seconds, keep_count = queue.retention()
    emit({"queue": name, "keep_seconds": keep_seconds, "keep_count": keep_count})


def register(group: "typer.Typer") -> None:
    import typer

    from localqueue.cli import options

    @group.command("keep", help=HELP)
    def keep(
        name: Annotated[str, options.queue_name()],
        duration: Annotated[
            str | None,
            typer.Argument(metavar="[DURATION]", help="Keep records this long: 30s, 15m, 12h, 7d."),
        ] = None,
        count: Annotated[
            int | None,
            typer.Option("--count", metavar="N", help="Keep only the newest N records."),
        ] = None,
        off: Annotated[bool, typer.Option("--off", help="Keep no history.")] = False,
        store_path: Annotated[str | None, options.store_path()] = None,
        strict: Annotated[bool, options.strict()] = False,
    ) -> None:
        run(name, duration, count, off, store_path, strict=strict)
