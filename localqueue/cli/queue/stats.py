"""``localqueue queue stats``: counts by state, as JSON or Prometheus text, once or watched."""

import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

from localqueue.message import QueueStats

if TYPE_CHECKING:
    import typer

    from localqueue.stores.base import QueueStore

HELP = """Print a queue's counts (ready, delayed, inflight, dead, total), whether it is
paused (`queue pause`), its limits (`queue limit`: max_inflight, rate, per_group; null:
none) and how many ready messages wait only because of a limit (held) as one JSON line;
without NAME, one line per queue the store has held (drained ones with zeros), or, when
stdout is a terminal, one aligned table of them with the age of each queue's oldest
ready message ("3m ago"; JSON keeps epoch seconds).
--format prometheus writes the text exposition format (for node_exporter's textfile
collector). --watch repeats every --interval seconds: JSON lines when stdout is not a
terminal, and a table redrawn on stderr when stderr is one; it ends (exit 0) when
stdout's reader goes away. A NAME the store never held is a warning (--strict: exit 4)."""

FORMATS = ("json", "prometheus")


def collect(store: "QueueStore", name: str | None) -> dict[str, dict[str, Any]]:
    """The counts of queue ``name``, or of every queue the store has held (by name),
    each with its settings and how many ready messages a limit holds back."""
    if name is not None:
        counts = {name: store.stats(name).to_dict()}
    else:
        counts = {queue: stats.to_dict() for queue, stats in store.queues().items()}
        if len(counts) != len(known := store.known_queues()):
            zero = QueueStats(ready=0, delayed=0, inflight=0, dead=0).to_dict()
            counts = {queue: counts.get(queue, zero) for queue in sorted({*counts, *known})}
    return {queue: {**stats, **_settings(store, queue)} for queue, stats in counts.items()}


def _settings(store: "QueueStore", queue: str) -> dict[str, Any]:
    """``queue``'s settings as stats shows them, and ``held``: the ready messages held
    back only by a limit (looked for only when it has one)."""
    from localqueue.cli.queue.limit import settings_line
    from localqueue.message import LIMITS

    settings = store.settings(queue)
    line = settings_line(queue, settings)
    del line["queue"]
    held = 0
    if any(getattr(settings, limit) is not None for limit in LIMITS):
        reason, count = store.held_back(queue)
        held = count if reason in LIMITS else 0
    return {**line, "held": held}


def _limits(stats: dict[str, Any]) -> str:
    """A queue's limits for the table: ``3 inflight, 100/s, 1 per group`` (or ``-``)."""
    shown = []
    if stats["max_inflight"] is not None:
        shown.append(f"{stats['max_inflight']} inflight")
    if stats["rate"] is not None:
        shown.append(stats["rate"])
    if stats["per_group"] is not None:
        shown.append(f"{stats['per_group']} per group")
    return ", ".join(shown) or "-"


def prometheus(counts: dict[str, dict[str, Any]]) -> bytes:
    """The counts in Prometheus' text exposition format (one gauge, labelled)."""
    lines = [
        "# HELP localqueue_messages Messages in a localqueue queue, by state.",
        "# TYPE localqueue_messages gauge",
    ]
    for queue, stats in counts.items():
        for state in ("ready", "delayed", "inflight", "dead"):
            lines.append(f'localqueue_messages{{queue="{queue}",state="{state}"}} {stats[state]}')
    return ("\n".join(lines) + "\n").encode()


def json_lines(counts: dict[str, dict[str, Any]]) -> bytes:
    from localqueue.codec import dumps_line

    return b"".join(dumps_line({"queue": queue, **stats}) for queue, stats in counts.items())


def ago(seconds: float) -> str:
    """A duration for people: ``45s ago``, ``3m ago``, ``5h ago``, ``2d ago``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{max(0, int(seconds))}s ago"


def oldest_ready(store: "QueueStore", queues: "list[str]") -> dict[str, float | None]:
    """When each queue's oldest ready message was enqueued (None: nothing ready)."""
    found: dict[str, float | None] = {}
    for queue in queues:
        rows = store.peek(queue, state="ready", limit=1)
        found[queue] = rows[0][5] if rows else None
    return found


def table(
    counts: dict[str, dict[str, Any]], oldest: "dict[str, float | None] | None" = None
) -> str:
    """The counts as an aligned table (with the settings of the queues that have any);
    with ``oldest``, a column of the oldest ready message's age ("3m ago")."""
    header: tuple[str, ...] = ("queue", "ready", "delayed", "inflight", "dead", "total")
    rows = [(queue, *(str(stats[key]) for key in header[1:])) for queue, stats in counts.items()]
    if any(stats.get("paused") for stats in counts.values()):
        header += ("paused",)
        rows = [(*row, "yes" if counts[row[0]]["paused"] else "-") for row in rows]
    if any(_limits(stats) != "-" for stats in counts.values()):
        header += ("limits", "held")
        rows = [(*row, _limits(counts[row[0]]), str(counts[row[0]]["held"])) for row in rows]
    if oldest is not None:
        now = time.time()
        header += ("oldest ready",)
        ages = {q: "-" if at is None else ago(now - at) for q, at in oldest.items()}
        rows = [(*row, ages.get(row[0], "-")) for row in rows]
    rows = [header, *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )


def run(
    name: str | None = None,
    fmt: str = "json",
    watch: bool = False,
    interval: float | None = None,
    store_path: str | None = None,
    strict: bool = False,
) -> None:
    from localqueue.cli import common
    from localqueue.cli.exit_codes import UsageError
    from localqueue.codec import validate_queue_name

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if name is not None:
        validate_queue_name(name)
    if interval is not None and not watch:
        raise UsageError("--interval needs --watch (without it the counts print once)")
    if interval is None:
        interval = 1.0
    if not interval > 0:
        raise UsageError(f"--interval must be > 0, got {interval!r}")
    render: Any = prometheus if fmt == "prometheus" else json_lines
    conf = common.settings(strict=strict or None, store_path=store_path)
    with common.open_store(conf) as store:
        if name is not None:
            common.check_queue_known(store, name, conf)
        # Every queue, JSON format, stdout a terminal: a person is reading, so a table.
        for_people = name is None and fmt == "json" and common.stdout_is_tty()
        if not watch:
            counts = collect(store, name)
            if for_people:
                common.emit_raw(f"{table(counts, oldest_ready(store, list(counts)))}\n".encode())
            else:
                common.emit_raw(render(counts))
            return
        screen = sys.stdout if for_people else sys.stderr if common.stderr_is_tty() else None
        data_out = not for_people and (not common.stdout_is_tty() or screen is None)
        drawn_lines = 0
        try:
            while True:
                counts = collect(store, name)
                if data_out:
                    common.emit_raw(render(counts))
                if screen is not None:
                    shown = table(counts, oldest_ready(store, list(counts)))
                    text = f"{time.strftime('%H:%M:%S')}  every {interval:g}s\n{shown}\n"
                    up = f"\x1b[{drawn_lines}F\x1b[J" if drawn_lines else ""
                    screen.write(up + text)
                    screen.flush()
                    drawn_lines = text.count("\n")
                if not common.wait_for_reader(interval):
                    return
        except BrokenPipeError:
            return  # the reader left (| head): a watch ends with it, like tail -f


def register(group: "typer.Typer") -> None:
    import typer

    from localqueue.cli import options

    @group.command("stats", help=HELP)
    def stats(
        name: Annotated[
            str | None, options.queue_name("Queue name; every queue in the store when omitted.")
        ] = None,
        fmt: Annotated[
            str,
            typer.Option("--format", metavar="json|prometheus", help="Output format."),
        ] = "json",
        watch: Annotated[
            bool, typer.Option("--watch", help="Print again every --interval seconds.")
        ] = False,
        interval: Annotated[float | None, options.interval()] = None,
        store_path: Annotated[str | None, options.store_path()] = None,
        strict: Annotated[bool, options.strict()] = False,
    ) -> None:
        run(name, fmt, watch, interval, store_path, strict=strict)
