"""``localqueue queue resume``: let workers lease a paused queue's messages again."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

HELP = """Resume a queue paused with `queue pause`: every worker leases from it again
(a --block worker at once where the store notifies it, else within its poll interval).
Prints its settings, as `queue limit` does: {"queue", "paused": false, ...}."""


def register(group: "typer.Typer") -> None:
    from typing import Annotated

    from localqueue.cli import options
    from localqueue.cli.queue.pause import run

    @group.command("resume", help=HELP)
    def resume(
        name: Annotated[str, options.queue_name()],
        store_path: Annotated[str | None, options.store_path()] = None,
        durability: Annotated[str | None, options.durability()] = None,
        strict: Annotated[bool, options.strict()] = False,
    ) -> None:
        run(name, False, store_path, durability, strict=strict)
