"""``localqueue queue dead``: list dead letters, once or following new ones."""

from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    import typer

HELP = """Print the queue's dead letters, oldest death first, one JSON line each. --watch
keeps running and prints new dead letters as they appear (every --interval seconds);
it ends (exit 0) when stdout's reader goes away, like tail -f. A NAME the store never
held is a warning (--strict: exit 4)."""


def run(
    name: str,
    limit: int | None = None,
    watch: bool = False,
    interval: float | None = None,
    store_path: str | None = None,
    strict: bool = False,
) -> None:
    from localqueue.cli.common import emit_raw, open_queue, settings, wait_for_reader
    from localqueue.cli.exit_codes import UsageError
    from localqueue.codec import dumps_line

    if limit is not None and limit < 0:
        raise UsageError(f"--limit must be >= 0, got {limit}")
    if interval is not None and not watch:
        raise UsageError("--interval needs --watch (without it the dead letters print once)")
    if interval is None:
        interval = 1.0
    if not interval > 0:
        raise UsageError(f"--interval must be > 0, got {interval!r}")
    with open_queue(name, settings(strict=strict or None, store_path=store_path)) as queue:
        seen: dict[str, float | None] = {}  # id -> dead_at, to print each death once
        while True:
            letters = queue.dead_letters(None if watch else limit)
            fresh = [m for m in letters if seen.get(m.id, -1.0) != m.dead_at]
            if watch and limit is not None and not seen:
                fresh = fresh[-limit:] if limit else []
            seen = {m.id: m.dead_at for m in letters}
            if fresh:
                try:
                    emit_raw(b"".join(dumps_line(m.to_dict()) for m in fresh))
                except BrokenPipeError:
                    if not watch:
                        raise
                    return  # the reader left (| head): a watch ends with it, like tail -f
            if not watch or not wait_for_reader(interval):
                return


def register(group: "typer.Typer") -> None:
    import typer

    from localqueue.cli import options

    @group.command("dead", help=HELP)
    def dead(
        name: Annotated[str, options.queue_name()],
        limit: Annotated[
            int | None,
            typer.Option(
                "--limit",
                "-n",
                metavar="N",
                help="Print at most N (with --watch: the N latest at start).",
                show_default=False,
            ),
        ] = None,
        watch: Annotated[
            bool, typer.Option("--watch", help="Keep running and print new dead letters.")
        ] = False,
        interval: Annotated[float | None, options.interval()] = None,
        store_path: Annotated[str | None, options.store_path()] = None,
        strict: Annotated[bool, options.strict()] = False,
    ) -> None:
        run(name, limit, watch, interval, store_path, strict=strict)
