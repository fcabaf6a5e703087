"""``localqueue config show``: the effective settings as one JSON object."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

HELP = """Print the effective settings (defaults < config file < LOCALQUEUE_* environment)
as one JSON object, with the config file they were read from."""


def run() -> None:
    from localqueue.cli.common import emit, settings

    emit(settings().to_dict())


def register(group: "typer.Typer") -> None:
    @group.command("show", help=HELP)
    def show() -> None:
        run()
