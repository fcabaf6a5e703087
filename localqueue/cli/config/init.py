"""``localqueue config init``: write a config file."""

import os
from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    import typer

HELP = """Write the config file with store_path and retry_store_path (the defaults unless
given), made absolute: cron and other directories then find the same stores. Refuses to
overwrite an existing file without --force. Prints what it wrote."""


def _absolute(path: str) -> str:
    """A file path (or lmdb://DIR) made absolute from the current directory; other URLs
    (postgresql://) as they are."""
    from localqueue.backends import backend_of

    kind, where = backend_of(path)
    if kind == "lmdb":
        return "lmdb://" + os.path.abspath(where)
    return path if kind == "postgres" else os.path.abspath(where)


def run(
    store_path: str | None = None, retry_store_path: str | None = None, force: bool = False
) -> None:
    from localqueue import config
    from localqueue.cli.common import emit
    from localqueue.cli.exit_codes import CliError

    path = config.config_path()
    if os.path.exists(path) and not force:
        raise CliError(f"{path} already exists (use --force to overwrite it)")
    values = {
        "store_path": config.SETTINGS["store_path"].default if store_path is None else store_path,
        "retry_store_path": config.SETTINGS["retry_store_path"].default
        if retry_store_path is None
        else retry_store_path,
    }
    checked = {
        key: _absolute(config.parse_value(key, value, f"--{key}")) for key, value in values.items()
    }
    config.write_file(path, checked)
    emit({"config_file": str(path), **checked})


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
