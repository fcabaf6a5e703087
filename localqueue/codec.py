"""JSON encoding of values and errors: the only place localqueue turns objects into bytes.

Stores move bytes; this module decides what bytes are allowed in. Everything is checked
*before* anything is written, so a bad value never leaves half a batch behind.

Two engines, one set of rules. orjson does the work, except for the first few JSON
calls of a process: importing orjson costs ~30 ms (it pulls in dataclasses, inspect,
uuid, datetime...), more than a one-shot command like ``localqueue queue add`` spends on
everything else, so those first JSON-native values go through the standard library's
``json`` under the same checks, and orjson loads once a process has made more calls. Values only
orjson understands (dataclasses, datetimes...) always go to orjson. ``tests/test_codec.py``
holds the two engines to the same accept/reject decisions.
"""

from __future__ import annotations

import math
import sys

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads these imports
if TYPE_CHECKING:
    from collections.abc import Iterable
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
    "error_to_dict",
    "may_hold_long_integers",
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


# -- engines -------------------------------------------------------------------------

_orjson: ModuleType | None = sys.modules.get("orjson")
#: JSON calls served by the standard library before orjson is loaded: enough for any
#: one-shot command (``queue add --value`` makes three), few enough not to matter to a
#: long-running process.
_STD_CALLS = 16
_std_calls_left = _STD_CALLS


def _fast() -> ModuleType | None:
    """orjson, or None while the standard library serves (see the module doc)."""
    global _orjson, _std_calls_left
    if _orjson is None:
        if _std_calls_left > 0:
            _std_calls_left -= 1
            return None
        import orjson

        _orjson = orjson
    return _orjson


def _orjson_now() -> ModuleType:
    global _orjson
    if _orjson is None:
        import orjson

        _orjson = orjson
    return _orjson


class _NotNative(Exception):
    """The value holds a type only orjson knows how to write."""


def _check_native(value: Any, depth: int = 0) -> None:
    """Apply orjson's rules to a JSON-native value, for the standard-library engine."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return
    if kind is int:
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise TypeError("value is not JSON-serialisable: Integer exceeds 64-bit range")
        return
    if kind is float:
        if not math.isfinite(value):
            raise ValueError(f"value contains {value!r}, which JSON cannot represent")
        return
    if kind is list or kind is tuple or kind is dict:
        if depth >= MAX_DEPTH:
            raise TypeError("value is not JSON-serialisable: Recursion limit reached")
        if kind is dict:
            for key, item in value.items():
                if type(key) is not str:
                    raise TypeError("value is not JSON-serialisable: Dict key must be str")
                _check_native(item, depth + 1)
        else:
            for item in value:
                _check_native(item, depth + 1)
        return
    raise _NotNative


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


def _encode_std(value: Any) -> bytes | None:
    """The standard-library engine; None when the value is not JSON-native."""
    try:
        _check_native(value)
    except _NotNative:
        return None
    import json

    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise TypeError(
            "value is not JSON-serialisable: str is not valid UTF-8: surrogates not allowed"
        ) from None


# -- values ----------------------------------------------------------------------------


def encode(value: Any) -> bytes:
    """Encode one queue value as compact JSON bytes.

    Raises TypeError for values JSON cannot hold (objects, non-string keys, integers
    outside 64 bits, nesting deeper than MAX_DEPTH) and ValueError for NaN and
    infinities, which orjson would otherwise write as ``null``, and for values longer
    than MAX_VALUE_BYTES as JSON.
    """
    orjson = _fast()
    if orjson is None:
        std = _encode_std(value)
        if std is not None:
            return _within_limit(std)
        orjson = _orjson_now()
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
    the small ones to exact-size objects, which this does."""
    return [compact(encode(value)) for value in values]


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
    orjson = _fast()
    if orjson is None:
        import json

        return json.loads(data)
    return orjson.loads(data)


def dumps_line(value: Any) -> bytes:
    """``value`` (JSON-native, e.g. a ``to_dict()``) as one compact JSON line, newline
    included: what every CLI command writes on stdout."""
    orjson = _fast()
    if orjson is None:
        data = _encode_std(value)
        if data is not None:
            return data + b"\n"
        orjson = _orjson_now()
    data = orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)
    return bytes(data)


def _exact_int(text: str) -> int:
    number = int(text)
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise ValueError(f"integer {text} is outside the 64-bit range")
    return number


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not valid JSON")


def may_hold_long_integers(raw: bytes) -> bool:
    """Whether JSON text has a run of 19+ digits somewhere: an integer orjson might turn
    into a float (text without one can go to orjson as it is)."""
    return _LONG_RUN in raw.translate(_DIGITS)


def decode_input(data: bytes | str) -> Any:
    """Parse untrusted JSON text (a CLI argument or a stdin line) strictly.

    Unlike :func:`decode`, integers that do not fit in 64 bits, ``NaN`` and
    ``Infinity`` are errors instead of silently becoming floats. Raises ValueError
    (json.JSONDecodeError and UnicodeDecodeError included).
    """
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    orjson = _fast()
    if orjson is not None and not may_hold_long_integers(raw):
        return orjson.loads(raw)
    import json

    try:  # decode first: json.loads(bytes) would guess UTF-16 or skip a BOM
        return json.loads(raw.decode("utf-8"), parse_int=_exact_int, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nesting too deep") from None


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
