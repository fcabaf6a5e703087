"""``localqueue config set``: change one setting in the config file."""

from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    import typer

HELP = """Set KEY to VALUE in the config file (created when missing, unless
LOCALQUEUE_CONFIG names it: that file must exist). Unknown keys and values of the wrong
type are refused (exit 2). Keys: store_path, retry_store_path, durability (full|normal,
any case), lease_timeout (seconds), strict (true|false). Prints the file's settings."""


def run(key: str, value: str) -> None:
    from localqueue import config
    from localqueue.cli.common import emit

    checked = config.parse_value(key, value, "config set")
    path = config.config_path()
    values = config.load_file(path, required=config.named())
    values[key] = checked
    config.write_file(path, values)
    emit({"config_file": str(path), **values})


def register(group: "typer.Typer") -> None:
    import typer

    @group.command("set", help=HELP)
    def set_(
        key: Annotated[str, typer.Argument(metavar="KEY", help="Setting name.")],
        value: Annotated[str, typer.Argument(metavar="VALUE", help="New value.")],
    ) -> None:
        run(key, value)
