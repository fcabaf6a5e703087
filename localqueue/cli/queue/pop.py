"""``localqueue queue pop``: lease one message and print it."""

TYPE_CHECKING = False  # typing costs start-up time on the fast path

if TYPE_CHECKING:
    import typer

HELP = """Lease the next message and print it (with its lease_token). Settle it later with
`queue ack` or `queue release`, or it is delivered again when the lease expires.
Exit 3 when nothing is ready (with --block, when --timeout elapses), saying so when the
queue is paused (`queue pause`) or its ready messages are held back by a limit (`queue
limit`), naming it."""


def run(
    name: str,
    worker_id: str | None = None,
    block: bool = False,
    timeout: float | None = None,
    lease_timeout: float | None = None,
    store_path: str | None = None,
    durability: str | None = None,
    strict: bool = False,
) -> None:
    from localqueue.cli.common import check_seconds, emit, open_queue, settings
    from localqueue.cli.exit_codes import UsageError

    if timeout is not None:
        if not block:
            raise UsageError("--timeout needs --block (without it pop never waits)")
        check_seconds("--timeout", timeout)
    conf = settings(
        strict=strict or None,
        store_path=store_path,
        durability=durability,
        lease_timeout=lease_timeout,
    )
    from localqueue.errors import Empty

    with open_queue(name, conf) as queue:
        try:
            message = queue.get_message(block, timeout, leased_by=worker_id)
        except Empty:
            reason, count = queue.store.held_back(name)  # why nothing came: read only then
            if reason == "paused":
                raise paused(name) from None
            if reason is not None:
                from localqueue.cli.queue.limit import held_back

                raise held_back(name, queue.settings(), reason, count) from None
            raise
    emit(message.to_dict())


def paused(name: str) -> Exception:
    """The error (exit 3) of a command that found nothing to lease because the queue
    is paused."""
    from localqueue.cli.exit_codes import EMPTY, CliError

    return CliError(f"queue {name!r} is paused (`localqueue queue resume {name}`)", EMPTY)


def register(group: "typer.Typer") -> None:
    from typing import Annotated

    import typer

    from localqueue.cli import options

    @group.command("pop", help=HELP)
    def pop(
        name: Annotated[str, options.queue_name()],
        worker_id: Annotated[str | None, options.worker_id()] = None,
        block: Annotated[
            bool, typer.Option("--block", help="Wait for a message instead of exiting 3.")
        ] = False,
        timeout: Annotated[
            float | None,
            typer.Option(
                "--timeout",
                metavar="SECONDS",
                help="With --block (needs it), give up (exit 3) after this long."
                " Default: wait forever.",
                show_default=False,
            ),
        ] = None,
        lease_timeout: Annotated[float | None, options.lease_timeout()] = None,
        store_path: Annotated[str | None, options.store_path()] = None,
        durability: Annotated[str | None, options.durability()] = None,
        strict: Annotated[bool, options.strict()] = False,
    ) -> None:
        run(name, worker_id, block, timeout, lease_timeout, store_path, durability, strict=strict)
