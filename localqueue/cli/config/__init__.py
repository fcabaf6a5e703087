"""The ``localqueue config`` group: one module per command; this module only wires them."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

COMMANDS = ("init", "show", "set")


def build() -> "typer.Typer":
    import importlib

    import typer

    group = typer.Typer(
        help="Show and edit the YAML config file ($XDG_CONFIG_HOME/localqueue/config.yaml, "
        "or the file LOCALQUEUE_CONFIG names).",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    for command in COMMANDS:
        importlib.import_module(f"{__name__}.{command}").register(group)
    return group
