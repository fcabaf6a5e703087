"""``localqueue queue add``: enqueue ``--value`` or JSON Lines from stdin in one transaction."""

import sys

from localqueue.cli.exit_codes import DATA_ERROR, OUTPUT_LOST, CliError, UsageError

TYPE_CHECKING = False  # typing costs start-up time on the fast path
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any

    import typer

    from localqueue.stores.base import QueueStore

HELP = """Enqueue one message (--value) or one per non-blank line of JSON Lines on stdin.
Creates the store when it does not exist (the only queue command that does).

All lines go in ONE transaction: a bad line enqueues nothing and exits 65 naming the line.
--key KEY (or --key-field PATH, a dotted path into each value) enqueues a value only if
no message of the queue with that key is ready, delayed or inflight; otherwise
--on-conflict says what happens: skip (the default) prints the message holding the key
with "duplicate": true and exits 0; error exits 4 and writes nothing; replace gives a
waiting holder the new value, priority and time (a leased one is left as it is, and
reported as a duplicate). --priority N: higher is leased first. --at TIME: ISO 8601 with
a timezone, or @EPOCH. --group G (or --group-field PATH) puts it in a group, whose
running messages `queue limit --per-group N` limits.
Prints each enqueued message as a JSON line (--ids: only the ids, one per line; -q:
nothing). After the commit, a reader that stops reading (| head -1) is no failure (exit
0); any other failure to write the output exits 7: committed, output lost (do not retry).
--value with data on stdin is a usage error (exit 2): give one or the other. Empty stdin
enqueues nothing and says so on stderr (exit 0; -q: silently).

A NAME the store never held makes a new queue, with a warning when it is close to one it
holds (did you mean 'emails'?); --strict refuses it instead: exit 4, nothing written (and
a store that does not exist: exit 1)."""


def invalid_json(where: str, exc: ValueError, line: int | None = None) -> CliError:
    """The error for JSON text that does not parse: ``stdin line 2, column 2: invalid
    JSON: ...`` (``line``: the stdin line, which the parser saw alone), ``--value line 1,
    column 3: ...``, or just ``where`` when the parser gave no position."""
    import json

    if isinstance(exc, json.JSONDecodeError):  # orjson's errors are JSONDecodeErrors too
        number = exc.lineno if line is None else line
        return CliError(
            f"{where} line {number}, column {exc.colno}: invalid JSON: {exc.msg}", DATA_ERROR
        )
    where = where if line is None else f"{where} line {line}"
    return CliError(f"{where}: invalid JSON: {exc}", DATA_ERROR)


def _parse(text: bytes, raw: bool, where: str, line: int | None = None) -> "Any":
    if raw:
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as exc:
            where = where if line is None else f"{where} line {line}"
            raise CliError(f"{where}: not valid UTF-8: {exc.reason}", DATA_ERROR) from None
    from localqueue.codec import decode_input

    try:
        return decode_input(text)
    except ValueError as exc:
        raise invalid_json(where, exc, line) from None


def read_values(data: bytes, raw: bool) -> "tuple[list[Any], list[int]]":
    """Parse JSON Lines (or raw lines); returns the values and their 1-based line numbers."""
    values: list[Any] = []
    numbers: list[int] = []
    if raw:
        for number, line in enumerate(data.split(b"\n"), 1):
            line = line.removesuffix(b"\r")
            if line.strip():
                values.append(_parse(line, True, "stdin", number))
                numbers.append(number)
        return values, numbers
    from localqueue.codec import line_parser

    loads = line_parser(data)
    append_value, append_number = values.append, numbers.append
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line or line.isspace():
            continue
        try:
            append_value(loads(line))
        except ValueError as exc:
            raise invalid_json("stdin", exc, number) from None
        append_number(number)
    return values, numbers


def _find_unencodable(values: "list[Any]", numbers: list[int], where_value: bool) -> CliError:
    from localqueue.codec import encode

    for value, number in zip(values, numbers, strict=True):
        try:
            encode(value)
        except (TypeError, ValueError) as exc:
            where = "--value" if where_value else f"stdin line {number}"
            return CliError(f"{where}: {exc}", DATA_ERROR)
    return CliError("input cannot be stored", DATA_ERROR)


def _stdin_has_data() -> bool:
    """Whether stdin is a file or pipe with data waiting (never blocks: a pipe whose
    writer has not written yet counts as empty)."""
    import os
    import stat

    try:
        fd = sys.stdin.fileno()
        mode = os.fstat(fd).st_mode
        if stat.S_ISREG(mode):
            return os.fstat(fd).st_size > os.lseek(fd, 0, os.SEEK_CUR)
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
            return False  # a terminal, /dev/null...
        import select

        if not select.select([fd], [], [], 0)[0]:
            return False
        return os.read(fd, 1) != b""  # readable: data, or the end of an empty input
    except (AttributeError, OSError, ValueError):
        return False


def warn_if_typo(store: "QueueStore", name: str) -> None:
    """A queue ``name`` the store never held is a new queue (no word), unless its name is
    close to one the store holds: then a warning asks whether that one was meant."""
    from localqueue.errors import LocalQueueError

    try:
        known = store.known_queues()
    except LocalQueueError:  # busy or damaged: the put meets it and says so
        return
    if name in known:
        return
    import difflib  # only for a name the store does not know: off the common path

    close = difflib.get_close_matches(name, known, n=1)
    if close:
        from localqueue.cli.exit_codes import warning

        warning(f"queue {name!r} is new: did you mean {close[0]!r}? (--strict refuses new queues)")


def _print(rows: "list[Any]", ids: bool, duplicates: list[bool]) -> None:
    """Print what was committed. A reader that left ends quietly (exit 0); any other
    failure to write exits OUTPUT_LOST, so that a script does not enqueue them again."""
    from localqueue.cli.common import emit_raw
    from localqueue.message import json_lines

    try:
        for start in range(0, len(rows), 256):  # small chunks: memory is reused
            chunk = rows[start : start + 256]
            if ids:
                emit_raw(b"".join(f"{row.id}\n".encode() for row in chunk))
            elif any(duplicates):
                from localqueue.cli.enqueue import mark_duplicates

                emit_raw(mark_duplicates(json_lines(chunk), duplicates[start : start + 256]))
            else:
                emit_raw(json_lines(chunk))
    except BrokenPipeError:
        return  # | head -1: the consumer stopped reading, which is not a failure
    except CliError as exc:
        raise CliError(
            f"{exc}; the {len(rows)} message(s) WERE enqueued (do not add them again)",
            OUTPUT_LOST,
        ) from None


def run(
    name: str,
    value: str | None = None,
    raw: bool = False,
    delay: float = 0.0,
    store_path: str | None = None,
    durability: str | None = None,
    quiet: bool = False,
    ids: bool = False,
    strict: bool = False,
    key: str | None = None,
    key_field: str | None = None,
    on_conflict: str | None = None,
    priority: int = 0,
    at: str | None = None,
    group: str | None = None,
    group_field: str | None = None,
) -> None:
    """The behaviour of ``queue add`` (no Typer here: the fast path calls it directly)."""
    from localqueue.cli.common import check_seconds, open_queue, settings
    from localqueue.codec import validate_queue_name

    validate_queue_name(name)
    check_seconds("--delay", delay)
    if quiet and ids:
        raise UsageError("give --quiet or --ids, not both")
    when = _check_enqueue_options(key, key_field, on_conflict, raw, delay, at)
    if group is not None and group_field is not None:
        raise UsageError("give --group or --group-field, not both")
    if group_field is not None and raw:
        raise UsageError("--group-field looks into JSON values: it cannot go with --raw")
    fields = key_field is not None or group_field is not None
    if sys.stdout is None and not quiet:  # started with >&-: say so before writing anything
        raise CliError("stdout is closed: nowhere to write the output (use --quiet)")
    conf = settings(store_path=store_path, durability=durability, strict=strict or None)
    encoded: list[bytes] | None = None
    if value is not None:
        if sys.stdin is not None and not sys.stdin.isatty() and _stdin_has_data():
            raise UsageError(
                "--value given and stdin has data too: give --value, or pipe JSON Lines"
                " on stdin, not both"
            )
        values, numbers = [_parse(value.encode("utf-8", "surrogateescape"), raw, "--value")], [0]
    else:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("give --value JSON, or pipe JSON Lines on stdin (stdin is a terminal)")
        from localqueue.codec import encode_lines

        data = sys.stdin.buffer.read()
        values, numbers = [], []
        if fields:  # keys or groups come from the decoded values: keep them
            encoded = encode_lines(data, values)
            if encoded is not None:
                lines = enumerate(data.split(b"\n"), 1)
                numbers = [number for number, line in lines if line and not line.isspace()]
        else:
            encoded = None if raw else encode_lines(data)
        if encoded is None:
            values, numbers = read_values(data, raw)
    if encoded is None:
        from localqueue.codec import encode_batch

        try:  # everything is checked before the store is even opened
            encoded = encode_batch(values)
        except (TypeError, ValueError):
            raise _find_unencodable(values, numbers, value is not None) from None
    if not encoded:
        if value is None and not quiet:  # `echo '' | queue add q`, or a forgotten --value
            from localqueue.cli.exit_codes import warning

            warning("no messages on stdin; nothing enqueued")
        return
    keys: list[str | None] | None = None
    if key is not None:
        keys = [key] * len(encoded)
    elif key_field is not None:  # checked before the store is opened: nothing written
        from localqueue.cli.enqueue import keys_for

        keys = keys_for(values, numbers, key_field)
    groups: list[str | None] | None = None
    if group is not None:
        groups = [group] * len(encoded)
    elif group_field is not None:
        from localqueue.cli.enqueue import keys_for

        groups = keys_for(values, numbers, group_field, "--group-field")
    # --strict: a queue the store never held is refused as the readers refuse it
    queue = open_queue(name, conf, create=not conf.strict)
    try:  # what the store returns is printed without decoding it again
        if not conf.strict:
            warn_if_typo(queue.store, queue.name)
        rows, duplicates = queue.put_encoded(
            encoded,
            delay=delay,
            at=when,
            priority=priority,
            keys=keys,
            on_conflict=on_conflict or "skip",  # type: ignore[arg-type]
            groups=groups,
        )
    finally:
        queue.close()
    if not quiet:
        _print(rows, ids, duplicates)


def _check_enqueue_options(
    key: str | None,
    key_field: str | None,
    on_conflict: str | None,
    raw: bool,
    delay: float,
    at: str | None,
) -> "datetime | None":
    """Usage errors of --key, --key-field, --on-conflict and --at; the --at time."""
    if key is not None and key_field is not None:
        raise UsageError("give --key or --key-field, not both")
    if key_field is not None and raw:
        raise UsageError("--key-field looks into JSON values: it cannot go with --raw")
    if on_conflict is not None:
        from localqueue.stores.base import ON_CONFLICT

        if key is None and key_field is None:
            raise UsageError("--on-conflict is for a keyed add: give --key or --key-field")
        if on_conflict not in ON_CONFLICT:
            raise UsageError(
                f"--on-conflict must be one of {', '.join(ON_CONFLICT)}, got {on_conflict!r}"
            )
    if at is None:
        return None
    if delay:
        raise UsageError("give --delay or --at, not both")
    from localqueue.cli.enqueue import parse_at

    return parse_at(at)


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
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="Print nothing (the exit status tells).")
        ] = False,
        ids: Annotated[
            bool, typer.Option("--ids", help="Print only the new ids, one per line.")
        ] = False,
        strict: Annotated[bool, options.strict()] = False,
        key: Annotated[
            str | None,
            typer.Option(
                "--key",
                metavar="KEY",
                help="Deduplication key: add only if no message with it is ready, delayed"
                " or inflight.",
                show_default=False,
            ),
        ] = None,
        key_field: Annotated[
            str | None,
            typer.Option(
                "--key-field",
                metavar="PATH",
                help="Take each value's key from this dotted path into it (account.id).",
                show_default=False,
            ),
        ] = None,
        on_conflict: Annotated[
            str | None,
            typer.Option(
                "--on-conflict",
                metavar="skip|error|replace",
                help="When the key is held: print the holder as a duplicate (skip, the"
                " default), exit 4 writing nothing (error), or update a waiting holder"
                " (replace).",
                show_default=False,
            ),
        ] = None,
        priority: Annotated[
            int,
            typer.Option("--priority", metavar="N", help="Higher is leased first."),
        ] = 0,
        at: Annotated[
            str | None,
            typer.Option(
                "--at",
                metavar="TIME",
                help="Deliver no sooner than TIME: ISO 8601 with a timezone, or @EPOCH.",
                show_default=False,
            ),
        ] = None,
        group: Annotated[
            str | None,
            typer.Option(
                "--group",
                metavar="GROUP",
                help="Put the message in this group (see queue limit --per-group).",
                show_default=False,
            ),
        ] = None,
        group_field: Annotated[
            str | None,
            typer.Option(
                "--group-field",
                metavar="PATH",
                help="Take each value's group from this dotted path into it (customer.id).",
                show_default=False,
            ),
        ] = None,
    ) -> None:
        run(
            name,
            value,
            raw,
            delay,
            store_path,
            durability,
            quiet,
            ids,
            strict,
            key=key,
            key_field=key_field,
            on_conflict=on_conflict,
            priority=priority,
            at=at,
            group=group,
            group_field=group_field,
        )
