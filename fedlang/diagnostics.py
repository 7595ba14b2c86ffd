"""Source positions and compiler diagnostics.

Every stage of the pipeline reports problems as :class:`Diagnostic` values that point at a
:class:`Span` of the original text. :func:`render` turns one into the familiar

    examples/bad.fed:4:3: error[E201]: unknown layer 'dence'
        dence 128 relu
        ^^^^^
      hint: did you mean 'dense'?
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field
from typing import Iterable

from .terminal import terminal_safe



@dataclass(frozen=True)
class Span:
    """A region of a source file: 1-based line/column of the first and one-past-last character."""

    line: int
    column: int
    end_line: int
    end_column: int

    @staticmethod
    def point(line: int, column: int) -> "Span":
        return Span(line, column, line, column + 1)

    def merge(self, other: "Span") -> "Span":
        start = min((self.line, self.column), (other.line, other.column))
        end = max((self.end_line, self.end_column), (other.end_line, other.end_column))
        return Span(start[0], start[1], end[0], end[1])


NO_SPAN = Span(1, 1, 1, 1)


@dataclass(frozen=True)
class Source:
    """The text of one spec file and the name it is reported under."""

    name: str
    text: str

    def line_text(self, line: int) -> str:
        lines = self._lines()
        return lines[line - 1] if 1 <= line <= len(lines) else ""

    def lines(self, first: int, last: int) -> list[str]:
        return self._lines()[first - 1 : last]

    @functools.cached_property
    def _split_lines(self) -> list[str]:
        """Split once: rendering n diagnostics must not split the text n times."""
        # Lines end at '\n' only, as the parser counts them: str.splitlines() would also split
        # at form feeds, '\x1c'…'\x1e', '\x85' and '\u2028', shifting every later line number.
        lines = self.text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return [line[:-1] if line.endswith("\r") else line for line in lines]

    def _lines(self) -> list[str]:
        return self._split_lines


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a spec. `code` is stable and documented in docs/errors.md."""

    code: str
    message: str
    span: Span
    hint: str | None = None
    severity: str = "error"  # or "warning"
    notes: tuple[str, ...] = field(default=())


class SpecError(Exception):
    """Raised by a stage that cannot continue; carries every diagnostic collected so far."""

    def __init__(self, source: Source, diagnostics: Iterable[Diagnostic]):
        self.source = source
        self.diagnostics = tuple(diagnostics)
        super().__init__(render_all(source, self.diagnostics, color=False))


class Diagnostics:
    """Collects diagnostics during a pass (passes never stop at the first problem)."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def error(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.items.append(Diagnostic(code, message, span, hint))

    def warning(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.items.append(Diagnostic(code, message, span, hint, severity="warning"))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "warning"]

    def raise_if_errors(self, source: Source) -> None:
        if self.errors:
            raise SpecError(source, sorted(self.items, key=_order))


def _order(d: Diagnostic) -> tuple[int, int]:
    return (d.span.line, d.span.column)


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice `word` was most likely meant to be, or None when nothing is close.

    Names other tools use for the same thing (`lr`, `batch_size`, …) are matched through
    `registry.ALIASES` first, then letter case, then spelling.
    """
    return _closest(word, tuple(choices))


@functools.lru_cache(maxsize=4096)
def _closest(word: str, choices: tuple[str, ...]) -> str | None:
    """Cached: difflib costs ~0.5 ms a call, and a spec can misspell the same word thousands of times."""
    from .registry import ALIASES  # the registry's definitions use Span: imported when first needed

    alias = ALIASES.get(word) or ALIASES.get(word.lower())
    if alias in choices and alias != word:
        return alias
    folded = [c for c in choices if c.lower() == word.lower()]
    if folded:
        return folded[0]
    matches = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """`did you mean 'x'?` for the closest choice, or None when nothing is close."""
    match = closest(word, choices)
    if match is None:
        return None
    case = " (names are lower-case)" if match.lower() == word.lower() and match != word else ""
    return f"did you mean '{match}'?{case}"


def one_of(choices: Iterable[str]) -> str:
    items = sorted(set(choices))
    return ", ".join(items)


def render(source: Source, diag: Diagnostic, color: bool = False) -> str:
    """`file:line:col: severity[code]: message`, the source line, a caret and the hint."""
    red, yellow, blue, bold, reset = (
        ("\x1b[31m", "\x1b[33m", "\x1b[34m", "\x1b[1m", "\x1b[0m") if color else ("",) * 5
    )
    tone = red if diag.severity == "error" else yellow
    span = diag.span
    # Messages quote spec strings and file names: no control character reaches the terminal.
    out = [
        f"{bold}{terminal_safe(source.name)}:{span.line}:{span.column}: {tone}{diag.severity}[{diag.code}]"
        f"{reset}{bold}: {terminal_safe(diag.message)}{reset}"
    ]
    text = "".join(c if c.isprintable() else " " if c == "\t" else "?" for c in source.line_text(span.line))
    if text.strip():
        width = (span.end_column - span.column) if span.end_line == span.line else len(text) - span.column + 1
        width = max(1, width)
        out.append(f"    {text}")
        out.append(f"    {' ' * (span.column - 1)}{tone}{'^' * width}{reset}")
    if diag.hint:
        out.append(f"  {blue}hint{reset}: {terminal_safe(diag.hint)}")
    for note in diag.notes:
        out.append(f"  note: {terminal_safe(note)}")
    return "\n".join(out)


def render_all(source: Source, diagnostics: Iterable[Diagnostic], color: bool = False) -> str:
    diagnostics = list(diagnostics)
    parts = [render(source, d, color) for d in diagnostics]
    errors = sum(d.severity == "error" for d in diagnostics)
    if errors:
        parts.append(f"{errors} error{'s' if errors != 1 else ''} in {terminal_safe(source.name)}")
    return "\n".join(parts)
