"""``localqueue queue size``: how many messages could be leased now, as a bare integer."""

TYPE_CHECKING = False  # typing costs start-up time on the fast path

if TYPE_CHECKING:
    import typer

HELP = "Print how many messages could be leased now (ready), as a bare integer."


def run(name: str, store_path: str | None = None, strict: bool = False) -> None:
    from localqueue.cli.common import emit_raw, open_queue, settings

    with open_queue(name, settings(strict=strict or None, store_path=store_path)) as queue:
        size = queue.qsize()
    emit_raw(b"%d\n" % size)


def register(group: "typer.Typer") -> None:
    from typing import Annotated

    from localqueue.cli import options

    @group.command("size", help=HELP)
    def size(
        name: Annotated[str, options.queue_name()],
        store_path: Annotated[str | None, options.store_path()] = None,
        strict: Annotated[bool, options.strict()] = False,
    ) -> None:
        run(name, store_path, strict=strict)
