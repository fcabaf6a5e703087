"""``localqueue queue limit``: set or show the limits every worker and ``pop`` obey."""

from typing import TYPE_CHECKING, Annotated, Any

if TYPE_CHECKING:
    import typer

    from localqueue.message import QueueSettings

HELP = """Set or show the queue's limits, kept in the store and obeyed by every worker and
`queue pop` using it, on every host, at each lease: --max-inflight N (at most N of its
messages running at once), --rate N/s, N/m or N/h (job starts spread evenly, one each
second/N (minute/N, hour/N) at most, so no second, minute or hour holds more than N; a
retry is a new start) and --per-group N (at most N running at once of each group: `queue
add --group`). An option not given keeps its limit; --clear lifts them all. With no
option, shows them. Prints {"queue", "paused", "max_inflight", "rate",
"per_group"} (null: no limit). A worker with free slots waits for a limit to let a job
start; a draining one exits once no message is left ready."""


def settings_line(name: str, settings: "QueueSettings") -> dict[str, Any]:
    """The JSON shape of a queue's settings, as `queue limit`, `pause` and `resume`
    print them and `queue stats` shows them: the rate as `--rate` takes it ("100/s")."""
    from localqueue.limits import format_rate

    return {
        "queue": name,
        "paused": settings.paused,
        "max_inflight": settings.max_inflight,
        "rate": format_rate(settings.rate, settings.rate_period),
        "per_group": settings.per_group,
    }


def held_back(name: str, settings: "QueueSettings", reason: str, count: int) -> Exception:
    """The error (exit 3) of a command that found nothing to lease because a limit
    holds the queue's ready messages back: it names the limit."""
    from localqueue.cli.exit_codes import EMPTY, CliError
    from localqueue.limits import format_rate

    value = getattr(settings, reason)
    if reason == "rate":
        value = format_rate(settings.rate, settings.rate_period)
    flag = "--" + reason.replace("_", "-")
    return CliError(
        f"queue {name!r}: {count} ready message(s) held back by its limit {flag} {value}"
        f" (`localqueue queue limit {name}`)",
        EMPTY,
    )


def run(
    name: str,
    max_inflight: int | None = None,
    rate: str | None = None,
    per_group: int | None = None,
    clear: bool = False,
    store_path: str | None = None,
    durability: str | None = None,
    strict: bool = False,
) -> None:
    from localqueue.cli.common import emit, open_queue, settings
    from localqueue.cli.exit_codes import UsageError
    from localqueue.limits import parse_rate

    given: dict[str, Any] = {}
    for flag, value in (("--max-inflight", max_inflight), ("--per-group", per_group)):
        if value is not None:
            if value < 1:
                raise UsageError(f"{flag} must be >= 1, got {value}")
            given[flag[2:].replace("-", "_")] = value
    if rate is not None:
        try:
            given["rate"] = parse_rate(rate)
        except ValueError as exc:
            raise UsageError(f"--rate: {exc}") from None
    if clear and given:
        raise UsageError("--clear lifts every limit: give it alone")
    if clear:
        given = {"max_inflight": None, "rate": None, "per_group": None}
    conf = settings(strict=strict or None, store_path=store_path, durability=durability)
    with open_queue(name, conf) as queue:
        now = queue.set_limits(**given) if given else queue.settings()
    emit(settings_line(name, now))


def register(group: "typer.Typer") -> None:
    import typer

    from localqueue.cli import options

    @group.command("limit", help=HELP)
    def limit(
        name: Annotated[str, options.queue_name()],
        max_inflight: Annotated[
            int | None,
            typer.Option("--max-inflight", metavar="N", help="At most N messages running at once."),
        ] = None,
        rate: Annotated[
            str | None,
            typer.Option(
                "--rate",
                metavar="N/s|N/m|N/h",
                help="At most N jobs started in any second, minute or hour, spread evenly.",
            ),
        ] = None,
        per_group: Annotated[
            int | None,
            typer.Option("--per-group", metavar="N", help="At most N running at once per group."),
        ] = None,
        clear: Annotated[bool, typer.Option("--clear", help="Lift every limit.")] = False,
        store_path: Annotated[str | None, options.store_path()] = None,
        durability: Annotated[str | None, options.durability()] = None,
        strict: Annotated[bool, options.strict()] = False,
    ) -> None:
        run(name, max_inflight, rate, per_group, clear, store_path, durability, strict)
