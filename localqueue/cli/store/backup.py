"""``localqueue store backup DEST``: a consistent, verified copy of a live store."""

from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    import typer

HELP = """Copy the store to DEST with SQLite's online backup API (safe while workers run),
verify the copy with an integrity check and print {"path", "backup", "ok", "messages"}.
DEST must not exist; it is created mode 0600."""


def run(destination: str, store_path: str | None = None, durability: str | None = None) -> None:
    from localqueue.cli.common import emit
    from localqueue.cli.store import open_sqlite

    store = open_sqlite(store_path, durability)
    try:
        emit(store.backup(destination))
    finally:
        store.close()


def register(group: "typer.Typer") -> None:
    import typer

    from localqueue.cli import options

    @group.command("backup", help=HELP)
    def backup(
        destination: Annotated[
            str, typer.Argument(metavar="DEST", help="The backup file to create.")
        ],
        store_path: Annotated[str | None, options.store_path()] = None,
        durability: Annotated[str | None, options.durability()] = None,
    ) -> None:
        run(destination, store_path, durability)
