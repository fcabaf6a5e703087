"""``localqueue config init``: write a config file."""

from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    import typer

HELP = """Write the config file with store_path and retry_store_path, made absolute: cron
and other directories then find the same stores. store_path is the default unless given;
retry_store_path, unless given, is the one kept with the queue store (a SQLite store's
directory's localqueue_retries.sqlite3; an LMDB or PostgreSQL store itself). Refuses to
overwrite an existing file without --force. Prints what it wrote."""


def run(
    store_path: str | None = None, retry_store_path: str | None = None, force: bool = False
) -> None:
    import os

    from localqueue import config
    from localqueue.backends import StoreAddress
    from localqueue.cli.common import emit
    from localqueue.cli.exit_codes import CliError

    path = config.config_path()
    if os.path.exists(path) and not force:
        raise CliError(f"{path} already exists (use --force to overwrite it)")
    given = {"store_path": store_path, "retry_store_path": retry_store_path}
    checked = {
        key: config.parse_value(key, value, f"--{key.replace('_', '-')}")
        for key, value in given.items()
        if value is not None
    }
    store = StoreAddress.parse(checked.get("store_path", config.SETTINGS["store_path"].default))
    retry = checked.get("retry_store_path")
    retry_store = store.attempts() if retry is None else StoreAddress.parse(retry)
    values = {
        "store_path": str(store.absolute()),
        "retry_store_path": str(retry_store.absolute()),
    }
    config.write_file(path, values)
    emit({"config_file": str(path), **values})


def register(group: "typer.Typer") -> None:
    import typer

    from localqueue.cli import options

    @group.command("init", help=HELP)
    def init(
        store_path: Annotated[str | None, options.store_path()] = None,
        retry_store_path: Annotated[str | None, options.retry_store_path()] = None,
        force: Annotated[
            bool, typer.Option("--force", help="Overwrite an existing config file.")
        ] = False,
    ) -> None:
        run(store_path, retry_store_path, force)
