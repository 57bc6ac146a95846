"""Problems found in an eval file, each placed at its line and named by its field."""

from __future__ import annotations

import difflib

from controltower.errors import ConfigError

Loc = tuple[str | int, ...]


class EvalFileError(ConfigError):
    """An eval file that cannot run; `problems` lists every mistake, each with its line."""


class Problems:
    """Mistakes as they are found; `raise_any` raises them all, sorted by line."""

    def __init__(self, source: str, lines: dict[Loc, int]) -> None:
        self.source, self.lines = source, lines
        self.found: list[tuple[int, str]] = []

    def add(self, loc: Loc, text: str) -> None:
        """One mistake at a field."""
        probe = loc
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe, 0)
        where = f"{self.source}:{line}" if line else self.source
        field_name = dotted(loc)
        self.found.append(
            (line, f"{where} {field_name}: {text}" if field_name else f"{where}: {text}")
        )

    def raise_any(self) -> None:
        """EvalFileError with every mistake, if there is any."""
        if self.found:
            raise EvalFileError([text for _, text in sorted(self.found, key=lambda f: f[0])])


def dotted(loc: Loc) -> str:
    """`scorers[0].regex` for ("scorers", 0, "regex")."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def unknown(key: str, allowed: tuple[str, ...], what: str = "unknown field") -> str:
    """The problem of an unknown key, with the closest known one as the fix."""
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"did you mean `{close[0]}`?" if close else f"use one of {', '.join(allowed)}"
    return f"{what}; fix: {hint}"
