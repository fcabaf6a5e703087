"""JSON encoding of values and errors: the only place localqueue turns objects into bytes.

Stores move bytes; this module decides what bytes are allowed in. Everything is checked
*before* anything is written, so a bad value never leaves half a batch behind.

One engine: orjson, imported on first use. One measured exception: a one-shot command
(the CLI's fast path: ``queue add``, ``pop``, ``ack``..., one or two small documents,
then exit) would spend more importing orjson than on the rest of its work (queue add:
37 ms of CPU, 46 ms with orjson; bench ``cli`` shows the start-up). The console script
calls :func:`one_shot` for such a command, before any JSON, and from then on this module
reads and writes with the standard library's ``json`` under the same rules
(:func:`_check_plain`); only :func:`encode_lines`, for input of any length, still uses
orjson. ``tests/test_codec.py`` runs every rule in both modes, and
``tests/cli/test_startup_budget.py`` keeps orjson out of those commands.
"""

from __future__ import annotations

import math

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads these imports
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from types import ModuleType
    from typing import Any

__all__ = [
    "MAX_DEPTH",
    "MAX_NAME_LENGTH",
    "MAX_VALUE_BYTES",
    "compact",
    "decode",
    "decode_input",
    "dumps_line",
    "encode",
    "encode_batch",
    "encode_lines",
    "error_to_dict",
    "line_parser",
    "one_shot",
    "validate_queue_name",
]

#: Deepest nesting of arrays/objects a value may have (orjson's own limit).
MAX_DEPTH = 254

MAX_NAME_LENGTH = 128
MAX_VALUE_BYTES = 16 * 1024 * 1024  # one value, as JSON
_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
# An integer literal too long to be sure it fits in 64 bits; orjson would turn it into
# a float silently, so such input goes through the exact (slower) parser instead. Runs
# of digits are found by mapping every byte to digit / not-digit (no regex: ``re`` costs
# start-up time on every command).
_DIGITS = bytes(1 if 0x30 <= byte <= 0x39 else 0 for byte in range(256))
_LONG_RUN = b"\x01" * 19
_INT64_MIN, _INT64_MAX = -(2**63), 2**64 - 1


def validate_queue_name(name: object) -> str:
    """Return ``name`` if it is a valid queue name, else raise InvalidQueueNameError."""
    from localqueue.errors import InvalidQueueNameError

    if isinstance(name, str) and 0 < len(name) <= MAX_NAME_LENGTH and _NAME_CHARS.issuperset(name):
        return name
    raise InvalidQueueNameError(
        f"invalid queue name {name!r}: use 1-{MAX_NAME_LENGTH} characters of A-Z a-z 0-9 . _ -"
    )


# -- the engines -----------------------------------------------------------------------

_orjson: ModuleType | None = None  # loaded on first use; an import statement per call
# would cost 100 ns of a 400 ns encode (bench put)


def _load_orjson() -> ModuleType:
    global _orjson
    import orjson

    _orjson = orjson
    return orjson


_one_shot = False


def one_shot() -> None:
    """Use the standard library's ``json`` for the rest of this process (see the module
    doc): for a command that handles a few small documents and exits."""
    global _one_shot
    _one_shot = True


def _check_plain(value: Any, depth: int = 0) -> None:
    """orjson's rules for the types the standard library writes, checked before it does."""
    kind = type(value)
    if kind is str or kind is bool or kind is float or value is None:
        return  # floats: json.dumps(allow_nan=False) refuses NaN and infinities itself
    if kind is int:
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise TypeError("value is not JSON-serialisable: Integer exceeds 64-bit range")
        return
    if kind is list or kind is tuple or kind is dict:
        if depth >= MAX_DEPTH:
            raise TypeError("value is not JSON-serialisable: Recursion limit reached")
        if kind is dict:
            for key, item in value.items():
                if type(key) is not str:
                    raise TypeError("value is not JSON-serialisable: Dict key must be str")
                _check_plain(item, depth + 1)
        else:
            for item in value:
                _check_plain(item, depth + 1)
        return
    raise TypeError(f"value is not JSON-serialisable: Type is not JSON serializable: {kind}")


def _plain_dumps(value: Any) -> bytes:
    import json

    _check_plain(value)
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise ValueError("value contains NaN or infinity, which JSON cannot represent") from None
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise TypeError(
            "value is not JSON-serialisable: str is not valid UTF-8: surrogates not allowed"
        ) from None


# -- values ----------------------------------------------------------------------------


def _reject_non_finite(value: Any) -> None:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"value contains {value!r}, which JSON cannot represent")
    elif isinstance(value, dict):
        for item in value.values():
            _reject_non_finite(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _reject_non_finite(item)


def encode(value: Any) -> bytes:
    """Encode one queue value as compact JSON bytes.

    Raises TypeError for values JSON cannot hold (objects, non-string keys, integers
    outside 64 bits, nesting deeper than MAX_DEPTH) and ValueError for NaN and
    infinities, which orjson would otherwise write as ``null``, and for values longer
    than MAX_VALUE_BYTES as JSON.
    """
    if _one_shot:
        return _within_limit(_plain_dumps(value))
    orjson = _orjson or _load_orjson()
    try:
        data: bytes = orjson.dumps(value)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise TypeError(f"value is not JSON-serialisable: {exc}") from None
    if b"null" in data:  # NaN and +-inf become null: look closer only then
        _reject_non_finite(value)
    return _within_limit(data)


def encode_batch(values: Iterable[Any]) -> list[bytes]:
    """:func:`encode` each value, for a batch kept in memory until it is written.

    orjson writes into a 1 KiB buffer and shrinks it in place; with glibc, thousands of
    such results kept alive leave a hole each and grow the heap, 6x slower than copying
    the small ones to exact-size objects, which this does. One loop over orjson rather
    than a call of :func:`encode` per value: a third of put_many's CPU (bench put_many).
    """
    if _one_shot:
        return [encode(value) for value in values]
    orjson = _orjson or _load_orjson()
    values = list(values)
    dumps = orjson.dumps
    try:
        encoded = [compact(dumps(value)) for value in values]
    except TypeError:
        return [compact(encode(value)) for value in values]  # encode names the problem
    for value, data in zip(values, encoded, strict=True):
        if b"null" in data:
            _reject_non_finite(value)
    if encoded and max(map(len, encoded)) > MAX_VALUE_BYTES:
        for data in encoded:
            _within_limit(data)
    return encoded


def compact(data: bytes) -> bytes:
    """``data`` in an exact-size object (see :func:`encode_batch`)."""
    return bytes(memoryview(data)) if len(data) < 1024 else data


def _within_limit(data: bytes) -> bytes:
    if len(data) > MAX_VALUE_BYTES:
        raise ValueError(
            f"value is {len(data)} bytes as JSON, over the limit of {MAX_VALUE_BYTES} bytes"
            " (16 MiB); store large data elsewhere and enqueue a reference"
        )
    return data


def decode(data: bytes | str) -> Any:
    """Decode JSON bytes written by :func:`encode`."""
    if _one_shot:
        import json

        return json.loads(data)
    orjson = _orjson or _load_orjson()
    return orjson.loads(data)


def dumps_line(value: Any) -> bytes:
    """``value`` (JSON-native, e.g. a ``to_dict()``) as one compact JSON line, newline
    included: what every CLI command writes on stdout."""
    if _one_shot:
        return _plain_dumps(value) + b"\n"
    orjson = _orjson or _load_orjson()
    return bytes(orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE))


# -- untrusted input -----------------------------------------------------------------


def _exact_int(text: str) -> int:
    number = int(text)
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise ValueError(f"integer {text} is outside the 64-bit range")
    return number


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not valid JSON")


def _exact_loads(raw: bytes) -> Any:
    """The standard library's parser, with integers kept exact and checked."""
    import json

    try:  # decode first: json.loads(bytes) would guess UTF-16 or skip a BOM
        return json.loads(raw.decode("utf-8"), parse_int=_exact_int, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nesting too deep") from None


def _may_hold_long_integers(raw: bytes) -> bool:
    """Whether JSON text has a run of 19+ digits somewhere: an integer orjson might turn
    into a float (text without one can go to orjson as it is)."""
    return _LONG_RUN in raw.translate(_DIGITS)


def line_parser(data: bytes) -> Callable[[bytes], Any]:
    """The strict parser (see :func:`decode_input`) for the lines of ``data``: orjson's
    when no line can hold an integer it would round, else the exact one. One look at the
    whole input is ~20x cheaper than one per line (bench ``cli``, stdin)."""
    if _one_shot or _may_hold_long_integers(data):
        return _exact_loads
    loads: Callable[[bytes], Any] = (_orjson or _load_orjson()).loads
    return loads


def decode_input(data: bytes | str) -> Any:
    """Parse untrusted JSON text (a CLI argument or a stdin line) strictly.

    Unlike :func:`decode`, integers that do not fit in 64 bits, ``NaN`` and
    ``Infinity`` are errors instead of silently becoming floats. Raises ValueError
    (json.JSONDecodeError and UnicodeDecodeError included).
    """
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    return line_parser(raw)(raw)


def encode_lines(data: bytes, values: list[Any] | None = None) -> list[bytes] | None:
    """The stored form of each non-blank JSON line of ``data``, in one pass that keeps no
    decoded value alive (bench ``cli``, stdin) unless ``values`` is given (each decoded
    value is appended to it: ``queue add --key-field`` reads keys from them); None when
    some line needs the careful path, :func:`decode_input` then :func:`encode` line by
    line, which names the line (integers beyond 64 bits, a bad line, a value
    :func:`encode` refuses). Uses orjson also in the one-shot mode: input on stdin may be
    any number of lines."""
    if _may_hold_long_integers(data):
        return None
    orjson = _orjson or _load_orjson()
    loads, dumps = orjson.loads, orjson.dumps
    encoded: list[bytes] = []
    append = encoded.append
    try:
        if values is None:
            for line in data.split(b"\n"):
                if line and not line.isspace():
                    append(compact(dumps(loads(line))))  # orjson input has no NaN or inf
        else:
            keep = values.append
            for line in data.split(b"\n"):
                if line and not line.isspace():
                    keep(value := loads(line))
                    append(compact(dumps(value)))
    except (ValueError, TypeError):  # bad JSON, or nesting orjson will not write
        return None
    if encoded and max(map(len, encoded)) > MAX_VALUE_BYTES:
        return None
    return encoded


def error_to_dict(error: BaseException | dict[str, Any] | str | None) -> dict[str, Any] | None:
    """Describe an error as ``{"type", "module", "message", ...}`` for ``last_error``."""
    if error is None:
        return None
    if isinstance(error, dict):
        described = dict(error)
        described.setdefault("type", "Error")
        described.setdefault("module", None)
        described.setdefault("message", "")
        return described
    if isinstance(error, str):
        return {"type": "Error", "module": None, "message": error}
    cls = type(error)
    return {"type": cls.__qualname__, "module": cls.__module__, "message": str(error)}
