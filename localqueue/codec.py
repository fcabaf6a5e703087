"""JSON encoding of values and errors: the only place localqueue turns objects into bytes.

Stores move bytes; this module decides what bytes are allowed in. Everything is checked
*before* anything is written, so a bad value never leaves half a batch behind.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

__all__ = [
    "MAX_NAME_LENGTH",
    "decode",
    "decode_input",
    "encode",
    "error_to_dict",
    "validate_queue_name",
]

MAX_NAME_LENGTH = 128
_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
# An integer literal too long to be sure it fits in 64 bits; orjson would turn it into
# a float silently, so such input goes through the exact (slower) parser instead.
_LONG_INT_RE = re.compile(rb"\d{19,}")
_INT64_MIN, _INT64_MAX = -(2**63), 2**64 - 1


def validate_queue_name(name: object) -> str:
    """Return ``name`` if it is a valid queue name, else raise InvalidQueueNameError."""
    from localqueue.errors import InvalidQueueNameError

    if isinstance(name, str) and _NAME_RE.fullmatch(name):
        return name
    raise InvalidQueueNameError(
        f"invalid queue name {name!r}: use 1-{MAX_NAME_LENGTH} characters of A-Z a-z 0-9 . _ -"
    )


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
    outside 64 bits, nesting deeper than 255) and ValueError for NaN and infinities,
    which orjson would otherwise write as ``null``.
    """
    try:
        data = orjson.dumps(value)
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise TypeError(f"value is not JSON-serialisable: {exc}") from None
    if b"null" in data:  # NaN and +-inf become null: look closer only then
        _reject_non_finite(value)
    return data


def decode(data: bytes | str) -> Any:
    """Decode JSON bytes written by :func:`encode`."""
    return orjson.loads(data)


def _exact_int(text: str) -> int:
    number = int(text)
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise ValueError(f"integer {text} is outside the 64-bit range")
    return number


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not valid JSON")


def decode_input(data: bytes | str) -> Any:
    """Parse untrusted JSON text (a CLI argument or a stdin line) strictly.

    Unlike :func:`decode`, integers that do not fit in 64 bits are an error instead of
    silently becoming floats. Raises ValueError (json.JSONDecodeError included).
    """
    raw = data.encode() if isinstance(data, str) else data
    if _LONG_INT_RE.search(raw) is None:
        return orjson.loads(raw)
    return json.loads(raw, parse_int=_exact_int, parse_constant=_no_constant)


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
