"""Key helpers: how a persistent retry finds the key of a call.

A ``key_fn`` is called with the wrapped function's own arguments and returns the key.
The helpers below name an argument instead; they are bound to the function's signature
at decoration time, so a misspelt argument name fails there, not at the first call.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from typing import Any

__all__ = [
    "ArgumentKey",
    "KeyFn",
    "idempotency_key_from_id",
    "key_from_argument",
    "key_from_attr",
]

KeyFn = Callable[..., str]


def _scalar_key(value: Any, what: str) -> str:
    if value is None:
        raise ValueError(f"retry key {what} is None")
    if isinstance(value, bool) or not isinstance(value, str | int | uuid.UUID):
        raise TypeError(f"retry key {what} must be a str, int or UUID, not {type(value).__name__}")
    text = str(value)
    if not text:
        raise ValueError(f"retry key {what} is empty")
    return text


class ArgumentKey:
    """Build a key from one argument of the call (optionally one of its attributes)."""

    def __init__(self, argument: str, attrs: tuple[str, ...] = (), prefix: str | None = None):
        if not argument.isidentifier():
            raise ValueError(f"argument name must be an identifier, got {argument!r}")
        self.argument = argument
        self.attrs = attrs
        self.prefix = prefix

    def __repr__(self) -> str:
        path = ".".join((self.argument, *self.attrs))
        return f"ArgumentKey({path!r}, prefix={self.prefix!r})"

    def _key(self, value: Any) -> str:
        what = ".".join((self.argument, *self.attrs))
        for attr in self.attrs:
            value = getattr(value, attr)
        key = _scalar_key(value, f"argument {what!r}")
        return key if self.prefix is None else f"{self.prefix}:{key}"

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        """Unbound use: the argument must be passed by keyword."""
        if self.argument not in kwargs:
            raise TypeError(f"retry key argument {self.argument!r} was not passed by keyword")
        return self._key(kwargs[self.argument])

    def bind(self, fn: Callable[..., Any]) -> KeyFn:
        """A key function for calls of ``fn``, which must accept the argument."""
        signature = inspect.signature(fn)
        parameter = signature.parameters.get(self.argument)
        var_keyword = next(
            (p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD), None
        )
        if parameter is None and var_keyword is None:
            name = getattr(fn, "__qualname__", repr(fn))
            raise TypeError(f"{name}() has no argument {self.argument!r} to build a retry key from")

        def key_for(*args: Any, **kwargs: Any) -> str:
            arguments = signature.bind_partial(*args, **kwargs)
            arguments.apply_defaults()
            if parameter is not None and self.argument in arguments.arguments:
                return self._key(arguments.arguments[self.argument])
            extra = arguments.arguments.get(var_keyword or "", {})
            if self.argument in extra:
                return self._key(extra[self.argument])
            raise TypeError(f"retry key argument {self.argument!r} was not passed")

        return key_for


def key_from_argument(name: str, *, prefix: str | None = None) -> ArgumentKey:
    """Key a call by the value of its argument ``name`` (a str or number): ``"42"``, or
    ``"prefix:42"`` with ``prefix``."""
    return ArgumentKey(name, (), prefix)


def key_from_attr(name: str, attr: str, *attrs: str, prefix: str | None = None) -> ArgumentKey:
    """Key a call by an attribute of its argument ``name``: ``key_from_attr("task", "id")``
    uses ``task.id``; more names walk further (``"owner", "id"``)."""
    return ArgumentKey(name, (attr, *attrs), prefix)


def idempotency_key_from_id(name: str, *, prefix: str | None = None) -> ArgumentKey:
    """Shorthand for ``key_from_attr(name, "id", prefix=prefix)``."""
    return ArgumentKey(name, ("id",), prefix)
