"""``localqueue store vacuum``: rebuild the store file to give free pages back."""

from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    import typer

HELP = """Rebuild the store file (VACUUM, then truncate the WAL) to give back the space
of deleted messages; prints {"path", "bytes_before", "bytes_after", "history_pruned"}.
It first deletes the history records past each queue's retention (queue keep), a small
batch per transaction; the rebuild holds the write lock while it runs, so other
commands wait (or exit 75 past their busy timeout)."""


def run(store_path: str | None = None, durability: str | None = None) -> None:
    from localqueue.cli.common import emit
    from localqueue.cli.store import open_sqlite

    store = open_sqlite(store_path, durability)
    try:
        emit(store.vacuum())
    finally:
        store.close()


def register(group: "typer.Typer") -> None:
    from localqueue.cli import options

    @group.command("vacuum", help=HELP)
    def vacuum(
        store_path: Annotated[str | None, options.store_path()] = None,
        durability: Annotated[str | None, options.durability()] = None,
    ) -> None:
        run(store_path, durability)
