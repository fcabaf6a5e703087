"""``localqueue queue list``: every queue in the store with its counts."""

from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    import typer

HELP = """Print every queue the store has held, drained ones too (with zeros), one JSON line
each: {"queue", "ready", "delayed", "inflight", "dead", "total", "paused", "max_inflight",
"rate", "per_group", "held"} (as `queue stats`), sorted by name."""


def run(store_path: str | None = None) -> None:
    from localqueue.cli.common import emit_raw, open_store, settings
    from localqueue.cli.queue.stats import collect, json_lines

    with open_store(settings(store_path=store_path)) as store:
        emit_raw(json_lines(collect(store, None)))


def register(group: "typer.Typer") -> None:
    from localqueue.cli import options

    @group.command("list", help=HELP)
    def list_(
        store_path: Annotated[str | None, options.store_path()] = None,
    ) -> None:
        run(store_path)
