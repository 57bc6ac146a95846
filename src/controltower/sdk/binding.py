"""Turn a call's positional and keyword arguments into `{parameter: value}`, later.

The decorator keeps the raw `args`/`kwargs` (no copy, no binding on the caller's
thread); the export thread binds them with the names precomputed here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class Binder:
    """Parameter names of one function, with `self`/`cls` left out."""

    __slots__ = ("names", "rest", "skip")

    def __init__(self, names: list[str], rest: str | None, skip: int) -> None:
        self.names = names
        self.rest = rest
        self.skip = skip

    @classmethod
    def of(cls, fn: Callable[..., Any]) -> Binder | None:
        """The binder of a function, or None when it has no inspectable signature."""
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):
            return None
        names = [p.name for p in params if p.kind in _POSITIONAL]
        rest = next((p.name for p in params if p.kind is inspect.Parameter.VAR_POSITIONAL), None)
        skip = 1 if names and names[0] in ("self", "cls") else 0
        return cls(names[skip:], rest, skip)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        """`{name: value}` of the arguments given (defaults left out); None when none."""
        if self.skip:
            args = args[self.skip :]
        names = self.names
        bound: dict[str, Any] = dict(zip(names, args, strict=False))
        if len(args) > len(names):
            bound[self.rest or "args"] = list(args[len(names) :])
        if kwargs:
            bound.update(kwargs)
        return bound or None


def call_input(binder: Binder | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """A call's arguments as the span's input."""
    if binder is not None:
        return binder.bind(args, kwargs)
    if not args and not kwargs:
        return None
    return {"args": list(args), "kwargs": kwargs}
