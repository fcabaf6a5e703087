"""``localqueue queue add``: enqueue ``--value`` or JSON Lines from stdin in one transaction."""

import sys

from localqueue.cli.exit_codes import DATA_ERROR, CliError, UsageError

TYPE_CHECKING = False  # typing costs start-up time on the fast path
if TYPE_CHECKING:
    from typing import Any

    import typer

HELP = """Enqueue one message (--value) or one per non-blank line of JSON Lines on stdin.

All lines go in ONE transaction: a bad line enqueues nothing and exits 65 naming the line.
Prints each enqueued message as a JSON line."""


def _parse(text: bytes, raw: bool, where: str) -> "Any":
    if raw:
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CliError(f"{where}: not valid UTF-8: {exc.reason}", DATA_ERROR) from None
    from localqueue.codec import decode_input

    try:
        return decode_input(text)
    except ValueError as exc:
        raise CliError(f"{where}: invalid JSON: {exc}", DATA_ERROR) from None


def read_values(data: bytes, raw: bool) -> "tuple[list[Any], list[int]]":
    """Parse JSON Lines (or raw lines); returns the values and their 1-based line numbers."""
    values: list[Any] = []
    numbers: list[int] = []
    if raw:
        for number, line in enumerate(data.split(b"\n"), 1):
            line = line.removesuffix(b"\r")
            if line.strip():
                values.append(_parse(line, True, f"line {number}"))
                numbers.append(number)
        return values, numbers
    import orjson

    from localqueue.codec import decode_input, may_hold_long_integers

    # orjson is exact except for integers beyond 64 bits (they become floats): only input
    # with a run of 19+ digits somewhere needs codec's exact parser, and one look at the
    # whole input is ~20x cheaper than a look at each line.
    loads = decode_input if may_hold_long_integers(data) else orjson.loads
    append_value, append_number = values.append, numbers.append
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line or line.isspace():
            continue
        try:
            append_value(loads(line))
        except ValueError as exc:
            raise CliError(f"line {number}: invalid JSON: {exc}", DATA_ERROR) from None
        append_number(number)
    return values, numbers


def encode_lines(data: bytes) -> "list[bytes] | None":
    """The stored form of each non-blank JSON line, in one pass that keeps no decoded
    values alive; None when some line needs :func:`read_values` (integers beyond 64 bits,
    a bad line, a value codec refuses), which then names the line."""
    from localqueue.codec import MAX_VALUE_BYTES, compact, may_hold_long_integers

    if may_hold_long_integers(data):
        return None
    import orjson

    loads, dumps = orjson.loads, orjson.dumps
    encoded: list[bytes] = []
    append = encoded.append
    try:
        for line in data.split(b"\n"):
            if line and not line.isspace():
                append(compact(dumps(loads(line))))  # orjson input has no NaN or infinities
    except (ValueError, TypeError):  # bad JSON, or nesting orjson will not write
        return None
    if encoded and max(map(len, encoded)) > MAX_VALUE_BYTES:
        return None
    return encoded


def _find_unencodable(values: "list[Any]", numbers: list[int], where_value: bool) -> CliError:
    from localqueue.codec import encode

    for value, number in zip(values, numbers, strict=True):
        try:
            encode(value)
        except (TypeError, ValueError) as exc:
            where = "--value" if where_value else f"line {number}"
            return CliError(f"{where}: {exc}", DATA_ERROR)
    return CliError("input cannot be stored", DATA_ERROR)


def run(
    name: str,
    value: str | None = None,
    raw: bool = False,
    delay: float = 0.0,
    store_path: str | None = None,
    durability: str | None = None,
) -> None:
    """The behaviour of ``queue add`` (no Typer here: the fast path calls it directly)."""
    from localqueue.cli.common import check_seconds, emit_raw, open_queue, settings
    from localqueue.codec import validate_queue_name

    validate_queue_name(name)
    check_seconds("--delay", delay)
    conf = settings(store_path=store_path, durability=durability)
    encoded: list[bytes] | None = None
    if value is not None:
        values, numbers = [_parse(value.encode("utf-8", "surrogateescape"), raw, "--value")], [0]
    else:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("give --value JSON, or pipe JSON Lines on stdin (stdin is a terminal)")
        data = sys.stdin.buffer.read()
        encoded = None if raw else encode_lines(data)
        values, numbers = ([], []) if encoded is not None else read_values(data, raw)
    if encoded is None:
        from localqueue.codec import encode_batch

        try:  # everything is checked before the store is even opened
            encoded = encode_batch(values)
        except (TypeError, ValueError):
            raise _find_unencodable(values, numbers, value is not None) from None
    if not encoded:
        return
    from localqueue.message import json_lines

    queue = open_queue(name, conf)
    try:  # straight to the store: what it returns is printed without decoding again
        rows = queue.store.put(queue.name, encoded, delay=delay, maxsize=queue.maxsize)
    finally:
        queue.close()
    for start in range(0, len(rows), 256):  # small chunks: memory is reused, not faulted in
        emit_raw(json_lines(rows[start : start + 256]))


def register(group: "typer.Typer") -> None:
    from typing import Annotated

    import typer

    from localqueue.cli import options

    @group.command("add", help=HELP)
    def add(
        name: Annotated[str, options.queue_name()],
        value: Annotated[
            str | None,
            typer.Option(
                "--value",
                metavar="JSON",
                help="The message value as JSON (a string with --raw). Default: read stdin.",
                show_default=False,
            ),
        ] = None,
        raw: Annotated[
            bool,
            typer.Option("--raw", help="Store the value (each stdin line) as a JSON string."),
        ] = False,
        delay: Annotated[
            float,
            typer.Option(
                "--delay", metavar="SECONDS", help="Deliver no sooner than this from now."
            ),
        ] = 0.0,
        store_path: Annotated[str | None, options.store_path()] = None,
        durability: Annotated[str | None, options.durability()] = None,
    ) -> None:
        run(name, value, raw, delay, store_path, durability)
