"""What ``queue add`` makes of its enqueue-time options: ``--at TIME``, and the
deduplication key of each value (``--key``, ``--key-field PATH``). Kept apart from the
command so that the fast path and the Typer command share it, and so that an add
without these options imports none of it."""

from __future__ import annotations

from datetime import UTC, datetime

from localqueue.cli.exit_codes import DATA_ERROR, CliError, UsageError

__all__ = ["keys_for", "mark_duplicates", "parse_at"]


def parse_at(text: str) -> datetime:
    """``--at``: ISO 8601 with a timezone (``2026-12-24T09:00:00+01:00``, ``...Z``) or
    ``@EPOCH`` seconds; anything else (a time without its timezone) is a usage error."""
    if text.startswith("@"):
        try:
            return datetime.fromtimestamp(float(text[1:]), tz=UTC)
        except (ValueError, OverflowError, OSError):
            raise UsageError(f"--at {text!r}: @EPOCH must be seconds since 1970") from None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"--at {text!r}: not an ISO 8601 time (2026-12-24T09:00:00+01:00) nor @EPOCH"
        ) from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise UsageError(
            f"--at {text!r} has no timezone: add one (+01:00, Z), or give @EPOCH seconds"
        )
    return when


def keys_for(
    values: list[object], numbers: list[int], key_field: str, option: str = "--key-field"
) -> list[str | None]:
    """The key (or group: ``option`` "--group-field") of each value: the string (or
    number) at the dotted ``key_field`` path of each (a list index is a number:
    ``items.0.id``). A value without one is a data error naming its line (``numbers``;
    0 for --value) and ``option``."""
    path = key_field.split(".")
    if len(path) == 1:  # the common case, one field of each object, without a call each
        name = path[0]
        try:
            found = [value[name] for value in values]  # type: ignore[index]
        except (KeyError, TypeError, IndexError):
            pass
        else:
            if all(type(key) is str for key in found):
                return found
    return [
        _field(value, path, key_field, number, option)
        for value, number in zip(values, numbers, strict=True)
    ]


def _field(value: object, path: list[str], key_field: str, number: int, option: str) -> str:
    where = "--value" if number == 0 else f"stdin line {number}"
    found = value
    for step in path:
        if isinstance(found, dict) and step in found:
            found = found[step]
        elif isinstance(found, list) and step.isdigit() and int(step) < len(found):
            found = found[int(step)]
        else:
            raise CliError(f"{where}: no {option} {key_field!r} in the value", DATA_ERROR)
    if isinstance(found, str):
        return found
    if isinstance(found, int) and not isinstance(found, bool):
        return str(found)
    if isinstance(found, float):
        from localqueue.codec import encode

        return encode(found).decode()
    raise CliError(
        f"{where}: {option} {key_field!r} is {type(found).__name__}, not a string or number",
        DATA_ERROR,
    )


def mark_duplicates(lines: bytes, duplicates: list[bool]) -> bytes:
    """JSON Lines of messages, with ``"duplicate": true`` added to the object of each
    line whose flag is set (the message that holds the key a value was added with)."""
    if not any(duplicates):
        return lines
    out = lines.split(b"\n")
    for index, duplicate in enumerate(duplicates):
        if duplicate:
            out[index] = out[index][:-1] + b',"duplicate":true}'
    return b"\n".join(out)
