"""``localqueue queue history``: the kept records of finished messages, newest first."""

TYPE_CHECKING = False  # typing costs start-up time on the fast path

if TYPE_CHECKING:
    import typer

HELP = """Print the queue's kept records of finished jobs, newest first. See queue keep;
one JSON line each: id, queue, "state": "finished", key, value, status (acked,
dead), attempts, enqueued_at, first_started_at, finished_at, duration, worker,
exit_code, error, errors (every attempt's), output. On a terminal, an aligned table.
--since TIME: ISO 8601 with a timezone, @EPOCH, or a DURATION (15m, 7d) ago."""


def run(
    name: str,
    status: str | None = None,
    since: str | None = None,
    limit: int | None = None,
    key: str | None = None,
    store_path: str | None = None,
    strict: bool = False,
) -> None:
    from localqueue.cli.common import emit_raw, open_queue, settings, stdout_is_tty
    from localqueue.cli.exit_codes import UsageError
    from localqueue.cli.history import parse_since, table
    from localqueue.codec import dumps_line
    from localqueue.history import HISTORY_STATUSES

    if status is not None and status not in HISTORY_STATUSES:
        raise UsageError(f"--status must be one of {', '.join(HISTORY_STATUSES)}, got {status!r}")
    if limit is not None and limit < 0:
        raise UsageError(f"--limit must be >= 0, got {limit}")
    after = None if since is None else parse_since(since)
    with open_queue(name, settings(strict=strict or None, store_path=store_path)) as queue:
        records = (
            [] if limit == 0 else queue.history(status=status, since=after, key=key, limit=limit)
        )
    if stdout_is_tty():
        emit_raw((table(records) + "\n").encode())
    else:
        emit_raw(b"".join(dumps_line(record) for record in records))


def register(group: "typer.Typer") -> None:
    from typing import Annotated

    import typer

    from localqueue.cli import options

    @group.command("history", help=HELP)
    def history(
        name: Annotated[str, options.queue_name()],
        status: Annotated[
            str | None,
            typer.Option("--status", metavar="acked|dead", help="Only records of this status."),
        ] = None,
        since: Annotated[
            str | None,
            typer.Option("--since", metavar="TIME", help="Only jobs finished since TIME."),
        ] = None,
        limit: Annotated[
            int | None,
            typer.Option("--limit", "-n", metavar="N", help="Print at most N.", show_default=False),
        ] = None,
        key: Annotated[
            str | None, typer.Option("--key", metavar="K", help="Only messages of key K.")
        ] = None,
        store_path: Annotated[str | None, options.store_path()] = None,
        strict: Annotated[bool, options.strict()] = False,
    ) -> None:
        run(name, status, since, limit, key, store_path, strict=strict)
