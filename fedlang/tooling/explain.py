"""`fedlang explain CODE`: what an error code means, a spec that makes it, and the fix.

Everything comes from docs/errors.md (like `rustc --explain`): the code's row (its meaning), the
fixture it links to under tests/fixtures/invalid/ (the wrong spec) with the exact message it
gets (the fixture's .expected file), and, from the "Fixes" table, the edit that makes the fixture
check (the right spec, shown as a diff). tests/frontend/test_explain.py checks every fix.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ERRORS_DOC = ROOT / "docs" / "errors.md"
FIXES_HEADING = "## Fixes"
_CODE = re.compile(r"^[EW]\d{3}$")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")


@dataclass(frozen=True)
class Fix:
    """Edits (old → new, each old occurring once) that make a fixture check."""

    fixture: str  # a file name under tests/fixtures/invalid/
    edits: tuple[tuple[str, str], ...]

    def apply(self, text: str) -> str:
        for old, new in self.edits:
            if text.count(old) != 1:
                raise ValueError(f"{self.fixture}: the text to fix must occur exactly once: {old!r}")
            text = text.replace(old, new)
        return text


@dataclass(frozen=True)
class Explanation:
    code: str
    stage: str
    meaning: str
    example: str  # the example cell: a snippet and fixture links
    fixtures: tuple[Path, ...]
    fix: Fix | None


def _cells(line: str) -> list[str]:
    inner = line.strip()[1:-1] if line.strip().endswith("|") else line.strip()[1:]
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


def _unescape(cell: str) -> str:
    """A `code` cell of the Fixes table: backticks dropped, \\n a line break, spaces kept."""
    cell = cell.strip()
    if cell.startswith("`") and cell.endswith("`"):
        cell = cell[1:-1]
    return cell.replace("\\n", "\n")


def load(doc: Path = ERRORS_DOC) -> dict[str, Explanation]:
    """Every documented code, read from docs/errors.md."""
    rows: dict[str, tuple[str, list[str]]] = {}
    fixes: dict[str, Fix] = {}
    stage = ""
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            stage = line[3:].strip()
            continue
        if not line.startswith("| "):
            continue
        cells = _cells(line)
        if not _CODE.match(cells[0]):
            continue
        if stage.startswith(FIXES_HEADING[3:]) and len(cells) == 4:
            edit = (_unescape(cells[2]), _unescape(cells[3]))
            previous = fixes.get(cells[0])
            fixes[cells[0]] = Fix(_unescape(cells[1]), (previous.edits if previous else ()) + (edit,))
        elif len(cells) >= 3 and cells[0] not in rows:
            rows[cells[0]] = (stage, cells)
    out = {}
    for code, (stage, cells) in rows.items():
        example = cells[2]
        fixtures = tuple((doc.parent / target).resolve() for _, target in _LINK.findall(example)
                         if target.endswith(".fed"))
        out[code] = Explanation(code, stage, _plain(cells[1]), example, fixtures, fixes.get(code))
    return out


def _plain(markdown: str) -> str:
    """Table-cell markdown as terminal text: links become their text."""
    return _LINK.sub(lambda m: m.group(1), markdown)


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line else line for line in text.rstrip("\n").split("\n"))


def explain_text(code: str) -> str | None:
    """The explanation printed by `fedlang explain`, or None for an unknown code."""
    explanations = load()
    entry = explanations.get(code.upper())
    if entry is None:
        return None
    kind = "warning" if entry.code.startswith("W") else "error"
    out = [f"{kind}[{entry.code}] ({entry.stage})", "", _wrap(entry.meaning), ""]
    snippet = _LINK.sub("", entry.example).strip(" —,")
    if snippet and not snippet.startswith("(") and "`" in snippet:
        out += [f"For example: {snippet}", ""]
    fixture = None
    if entry.fix is not None:
        fixture = ROOT / "tests" / "fixtures" / "invalid" / entry.fix.fixture
    elif entry.fixtures:
        fixture = entry.fixtures[0]
    if fixture is not None and fixture.exists():
        wrong = fixture.read_text(encoding="utf-8", errors="replace")
        relative = fixture.relative_to(ROOT).as_posix()
        out += [f"Wrong ({relative}):", "", _indent(wrong), ""]
        expected = fixture.with_suffix(".expected")
        if expected.exists():
            out += ["`fedlang check` says:", "", _indent(expected.read_text(encoding="utf-8")), ""]
        if entry.fix is not None:
            right = entry.fix.apply(wrong)
            diff = difflib.unified_diff(wrong.splitlines(), right.splitlines(), "wrong", "right", lineterm="", n=1)
            out += ["Right (the fix, as a diff; the fixed spec checks):", "", _indent("\n".join(list(diff)[2:])), ""]
    if len(entry.fixtures) > 1:
        others = ", ".join(p.relative_to(ROOT).as_posix() for p in entry.fixtures if p != fixture)
        out += [f"More specs that get {entry.code}: {others}", ""]
    return "\n".join(out).rstrip() + "\n"


def _wrap(text: str, width: int = 96) -> str:
    import textwrap

    return textwrap.fill(text, width)


def pointer(codes) -> str | None:
    """The last line of an error report: where to read more about its codes."""
    codes = list(dict.fromkeys(codes))
    if not codes:
        return None
    if len(codes) == 1:
        return f"For more about this error, run `fedlang explain {codes[0]}`."
    return f"For more about an error, run `fedlang explain CODE` with one of: {', '.join(codes)}."
