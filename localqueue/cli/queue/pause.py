"""``localqueue queue pause``: stop every worker and ``pop`` from leasing a queue's messages."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

HELP = """Pause the queue for every worker and `queue pop` using the store, on every host:
nothing is leased until `queue resume`. Running jobs finish and settle; `queue add` still
works. A draining worker then exits 0, a --block/--forever one waits, and `pop` exits 3,
each saying the queue is paused. Kept in the store. Prints its settings, as `queue
limit` does: {"queue", "paused": true, ...}."""


def run(
    name: str,
    paused: bool,
    store_path: str | None = None,
    durability: str | None = None,
    strict: bool = False,
) -> None:
    """Pause (``paused``) or resume queue ``name`` and print its settings."""
    from localqueue.cli.common import emit, open_queue, settings
    from localqueue.cli.queue.limit import settings_line

    conf = settings(strict=strict or None, store_path=store_path, durability=durability)
    with open_queue(name, conf) as queue:
        now = queue.pause() if paused else queue.resume()
    emit(settings_line(name, now))


def register(group: "typer.Typer") -> None:
    from typing import Annotated

    from localqueue.cli import options

    @group.command("pause", help=HELP)
    def pause(
        name: Annotated[str, options.queue_name()],
        store_path: Annotated[str | None, options.store_path()] = None,
        durability: Annotated[str | None, options.durability()] = None,
        strict: Annotated[bool, options.strict()] = False,
    ) -> None:
        run(name, True, store_path, durability, strict=strict)
