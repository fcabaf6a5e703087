"""The ``localqueue queue`` group: one module per command; this module only wires them."""

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads these imports

if TYPE_CHECKING:
    import typer

COMMANDS = (
    "add",
    "size",
    "stats",
    "list",
    "inspect",
    "peek",
    "dead",
    "history",
    "log",
    "keep",
    "requeue_dead",
    "pop",
    "ack",
    "release",
    "process",
    "exec",
    "delete",
    "purge",
    "wait",
    "pause",
    "resume",
    "limit",
)


def build() -> "typer.Typer":
    import importlib

    import typer

    group = typer.Typer(
        help="Enqueue, inspect, lease and settle messages; run workers.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    for command in COMMANDS:
        importlib.import_module(f"{__name__}.{command}").register(group)
    return group
