"""The ``localqueue store`` group: maintenance of a SQLite store file; this module only
wires the commands and holds what they share."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

    from localqueue.stores.sqlite import SQLiteQueueStore

COMMANDS = ("check", "backup", "vacuum")


def open_sqlite(store_path: str | None, durability: str | None) -> "SQLiteQueueStore":
    """The SQLite store the settings name; a usage error (exit 2) for any other kind."""
    import os

    from localqueue.cli.common import settings
    from localqueue.cli.exit_codes import CliError, UsageError
    from localqueue.stores.sqlite import SQLiteQueueStore

    conf = settings(store_path=store_path, durability=durability)
    backend, where = conf.store
    if backend != "sqlite":
        kind = "an LMDB" if backend == "lmdb" else "a PostgreSQL"
        raise UsageError(
            f"'localqueue store' works on SQLite store files; {conf.store_path.split('://')[0]}://"
            f" is {kind} store (use that system's own tools)"
        )
    if not os.path.exists(where):
        raise CliError(f"{where}: no such store file")
    if conf.durability == "normal":
        return SQLiteQueueStore(where, durability="normal")
    return SQLiteQueueStore(where)


def build() -> "typer.Typer":
    import importlib

    import typer

    group = typer.Typer(
        help="Check, back up and compact a SQLite store file.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    for command in COMMANDS:
        importlib.import_module(f"{__name__}.{command}").register(group)
    return group
