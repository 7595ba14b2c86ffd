"""`fedlang fmt`: one canonical layout for .fed specs, like gofmt — no options.

The layout: two-space indentation inside blocks; within a run of lines (up to a blank line) the
values of one-setting lines start in one column; `key value` settings sharing a line are kept
together, two spaces apart; `name = value` in calls and layers, `name @PLACE = value` in steps;
trailing comments of consecutive lines aligned two spaces after the longest line; exactly one
blank line between blocks; blank lines inside blocks kept (several become one).

The layout is rebuilt from the parse tree (values printed from their tokens, so `1.0` stays a
float); comments come from the text. A statement spanning several lines with a comment inside, or a block header
with a comment inside it, is copied unchanged (only its first line is re-indented): fmt never
guesses where such a comment belongs; without comments inside, it is joined onto one line. `format_source` re-parses its output and refuses (FormatError) if the AST differs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lark import Token, Tree

from .. import ast
from ..diagnostics import Source, Span
from ..parse import parse_source, parser
from ..registry import BLOCK_BY_KEYWORD

INDENT = "  "
BRACED = {keyword for keyword, block in BLOCK_BY_KEYWORD.items() if not block.line}  # every `{ … }` block


class FormatError(Exception):
    """The formatted text would not mean the same as the input (a bug in fmt; the file is left alone)."""


@dataclass
class _Line:
    code: str
    comment: str | None = None
    align: bool = False  # its comment may be aligned with its neighbours'


def format_source(source: Source) -> str:
    """The canonical layout of a spec; raises SpecError if it does not parse."""
    text = _normalized(source.text)
    original = parse_source(Source(source.name, text))
    tree = parser().parse(text if text.endswith("\n") else text + "\n")
    out = _Formatter(text, tree).run()
    try:
        again = parse_source(Source(source.name, out))
    except Exception as exc:  # pragma: no cover - a bug in the formatter
        raise FormatError(f"formatted text does not parse: {exc}") from None
    if without_spans(again) != without_spans(original):  # pragma: no cover - a bug in the formatter
        raise FormatError("formatting would change the spec's meaning")
    return out


def _normalized(text: str) -> str:
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n")


POSITION_FIELDS = ("span", "line", "lines")  # where a node came from, not what it means


def without_spans(node):
    """A node with every source position dropped, for comparing meanings (ASTs, CheckedSpecs)."""
    if isinstance(node, Span):
        return None
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return (type(node).__name__,) + tuple(
            (f.name, without_spans(_unpositioned(f.name, getattr(node, f.name)))) for f in dataclasses.fields(node)
            if f.name not in POSITION_FIELDS)
    if isinstance(node, (list, tuple)):
        return tuple(without_spans(x) for x in node)
    if isinstance(node, dict):
        return tuple(sorted((repr(k), without_spans(v)) for k, v in node.items()))
    return node


def _unpositioned(name: str, value):
    """A round's `frame` holds (line, name, type) triples: the line is a position too."""
    if name == "frame" and isinstance(value, tuple):
        return tuple(entry[1:] for entry in value)
    return value


# ---------------------------------------------------------------- values


def value_text(node) -> str:
    """A value, argument, type or statement tail printed canonically."""
    if isinstance(node, Token):
        return str(node)
    kind, kids = node.data, node.children
    if kind in ("number", "string"):
        return str(kids[0])
    if kind == "negative":
        return "-" + str(kids[0])
    if kind in ("true", "false"):
        return kind
    if kind == "dotted":
        return ".".join(str(t) for t in kids)
    if kind == "list":
        return "[" + ", ".join(value_text(k) for k in kids) + "]"
    if kind == "call":
        return value_text(kids[0]) + "(" + ", ".join(value_text(k) for k in kids[1:]) + ")"
    if kind == "keyword_arg":
        return f"{kids[0]} = {value_text(kids[1])}"
    if kind == "fed_param":
        return f"{kids[0]}: {value_text(kids[1])}"
    if kind == "fed_type":
        dims = next((k for k in kids[1:] if isinstance(k, Tree) and k.data == "dims"), None)
        return str(kids[0]) + (value_text(dims) if dims is not None else "") + " " + value_text(kids[-1])
    if kind == "dims":
        return "[" + ", ".join(value_text(k) for k in kids) + "]"
    if kind == "dim":
        return str(kids[0])
    if kind == "model_dim":
        return "*"
    if kind == "unknown_dim":
        return "?"
    if kind == "placement":
        return "@" + str(kids[0])
    raise FormatError(f"fmt does not know the construct {kind!r}")  # pragma: no cover


_KEYWORD_LINES = {"input_decl": "input", "loss_decl": "loss", "metrics_decl": "metrics"}


def _head_and_rest(stmt: Tree) -> tuple[str, str | None, bool]:
    """(head, rest, alignable) of one statement: the rest starts in the aligned column."""
    kind, kids = stmt.data, stmt.children
    if kind == "setting":
        return str(kids[0]), value_text(kids[1]), True
    if kind in _KEYWORD_LINES:
        return _KEYWORD_LINES[kind], value_text(kids[0]), True
    if kind == "layer":
        rest = " ".join(value_text(k) for k in kids[1:])
        return str(kids[0]), rest or None, True
    if kind == "assign":
        return f"{kids[0]} {value_text(kids[1])} = {value_text(kids[2])}", None, False
    if kind == "return_stmt":
        return "return " + value_text(kids[0]), None, False
    if kind == "monitor_checkpoint":
        return "checkpoint every " + value_text(kids[0]), None, False
    if kind == "alert":
        condition, action = kids
        c = condition.children
        if condition.data == "threshold_condition":
            text = f"{c[0]} {c[1]} {value_text(c[2])}" + (f" of {c[3]}" if len(c) > 3 else "")
        elif condition.data == "plateau_condition":
            by = f" by {value_text(c[1])}" if len(c) == 4 else ""
            text = f"{c[0]} not improving{by} for {value_text(c[-2])} {c[-1]}"
        else:
            text = "nan"
        return f"alert {text} -> {action}", None, False
    raise FormatError(f"fmt does not know the statement {kind!r}")  # pragma: no cover


def _joined(head: str, rest: str | None, width: int = 0) -> str:
    return head if rest is None else f"{head:<{width}} {rest}"


# ---------------------------------------------------------------- layout


@dataclass
class _Row:
    """Statements starting on one line (or continuing a multi-line one)."""

    stmts: list
    start: int
    end: int
    verbatim: bool = False


class _Formatter:
    def __init__(self, text: str, tree: Tree):
        self.text = text
        self.lines = text.split("\n")
        self.tree = tree
        self.comments = _comments(text)  # line → (column, text)
        self.used: set[int] = set()  # comment lines already placed

    # -- helpers on the source
    def _code_on(self, line: int) -> bool:
        source = self.lines[line - 1]
        cut = self.comments[line][0] - 1 if line in self.comments else len(source)
        return bool(source[:cut].strip())

    def _comment(self, line: int) -> str | None:
        if line in self.comments and line not in self.used:
            self.used.add(line)
            return self.comments[line][1]
        return None

    def _has_comment_inside(self, first: int, last: int) -> bool:
        """A comment on lines first … last-1 (a comment on `last` is the construct's trailing one)."""
        return any(line in self.comments for line in range(first, last))

    def _slice(self, line: int, column: int, end_line: int, end_column: int) -> str:
        if line == end_line:
            return self.lines[line - 1][column - 1:end_column - 1]
        parts = [self.lines[line - 1][column - 1:]]
        parts += self.lines[line:end_line - 1]
        parts.append(self.lines[end_line - 1][:end_column - 1])
        return "\n".join(p.rstrip() for p in parts)

    # -- the whole file
    def run(self) -> str:
        elements: list[tuple[int, int, object]] = []  # (first line, last line, item tree or comment line)
        for item in self.tree.children:
            elements.append((item.meta.line, item.meta.end_line, item))
        claimed = {line for item in self.tree.children for line in range(item.meta.line, item.meta.end_line + 1)}
        for line in self.comments:
            if line not in claimed:
                elements.append((line, line, line))
        elements.sort(key=lambda e: e[0])

        gaps = [i > 0 and elements[i][0] > elements[i - 1][1] + 1 for i in range(len(elements))]
        for k, (_, _, thing) in enumerate(elements):
            if isinstance(thing, Tree) and thing.data in BRACED:
                j = k
                while j > 0 and isinstance(elements[j - 1][2], int) and not gaps[j]:
                    j -= 1  # comments right above a block belong to it
                if j > 0:
                    gaps[j] = True
                if k + 1 < len(elements):
                    gaps[k + 1] = True

        out: list[_Line] = []
        for gap, (first, last, thing) in zip(gaps, elements):
            if gap:
                out.append(_Line(""))
            if isinstance(thing, int):
                out.append(_Line("", self._comment(thing)))
            elif thing.data in BRACED:
                out.extend(self._block(thing))
            else:
                out.extend(self._simple(thing))
        return _render(out)

    def _simple(self, item: Tree) -> list[_Line]:
        meta = item.meta
        if meta.line != meta.end_line or self._has_comment_inside(meta.line, meta.end_line):
            return self._verbatim(meta.line, meta.column, meta.end_line, meta.end_column, "")
        if item.data == "experiment":
            code = f"experiment {item.children[0]}"
        else:
            code = f"seed {value_text(item.children[0])}"
        return [_Line(code, self._comment(meta.end_line), align=True)]

    def _verbatim(self, line: int, column: int, end_line: int, end_column: int, indent: str) -> list[_Line]:
        """Source text copied unchanged (first line re-indented), with its comments."""
        for inner in range(line, end_line):
            self.used.add(inner)
        body = self._slice(line, column, end_line, end_column)
        comment = self._comment(end_line)
        return [_Line(indent + body, comment, align=False)]

    # -- blocks
    def _header(self, block: Tree) -> tuple[str, int, int]:
        """(canonical header up to and including '{', line of the '{', its column)."""
        kids = block.children
        kind = block.data
        if kind == "aggregate":
            params = [k for k in kids if isinstance(k, Tree) and k.data == "fed_param"]
            result = next(k for k in kids if isinstance(k, Tree) and k.data == "fed_type")
            text = (f"aggregate {kids[0]}(" + ", ".join(value_text(p) for p in params) + ") -> "
                    + value_text(result) + " {")
            brace = self._find("{", result.meta.end_line, result.meta.end_column)
        else:
            name = kids[0] if kids and isinstance(kids[0], Token) else None
            text = kind + (f" {name}" if name is not None else "") + " {"
            after = (name.end_line, name.end_column) if name is not None else (block.meta.line, block.meta.column + len(kind))
            brace = self._find("{", *after)
        return text, brace[0], brace[1]

    def _find(self, char: str, line: int, column: int) -> tuple[int, int]:
        """Position of the next `char` at or after (line, column), skipping whitespace."""
        while True:
            source = self.lines[line - 1]
            index = source.find(char, column - 1)
            if index >= 0:
                return line, index + 1
            line, column = line + 1, 1

    def _statements(self, block: Tree) -> list[Tree]:
        return [k for k in block.children if isinstance(k, Tree)
                and k.data not in ("fed_param", "fed_type")]

    def _block(self, block: Tree) -> list[_Line]:
        meta = block.meta
        header, brace_line, brace_column = self._header(block)
        stmts = self._statements(block)
        one_line = meta.line == meta.end_line
        if one_line:
            parts = [_joined(*_head_and_rest(s)[:2]) for s in stmts]
            code = header + (" " + "  ".join(parts) + " }" if parts else "}")
            return [_Line(code, self._comment(meta.line), align=True)]

        out: list[_Line] = []
        if self._has_comment_inside(meta.line, brace_line):
            out += self._verbatim(meta.line, meta.column, brace_line, brace_column + 1, "")
        else:
            out.append(_Line(header, None if any(s.meta.line == brace_line for s in stmts)
                             else self._comment(brace_line)))

        rows = self._rows(stmts)
        elements: list[tuple[int, int, object]] = [(r.start, r.end, r) for r in rows]
        for line in range(brace_line + 1, meta.end_line):
            if line in self.comments and line not in self.used and not self._code_on(line) \
                    and not any(r.start <= line <= r.end for r in rows):
                elements.append((line, line, line))
        elements.sort(key=lambda e: e[0])

        body: list[tuple[bool, object]] = []  # (blank line before, row or comment line)
        previous_end = None
        for first, last, thing in elements:
            body.append((previous_end is not None and first > previous_end + 1, thing))
            previous_end = last
        out += self._body(body)

        closing = self._comment(meta.end_line)
        out.append(_Line("}", closing))
        return out

    def _rows(self, stmts: list[Tree]) -> list[_Row]:
        rows: list[_Row] = []
        for stmt in stmts:
            if rows and stmt.meta.line <= rows[-1].end:
                rows[-1].stmts.append(stmt)
                rows[-1].end = max(rows[-1].end, stmt.meta.end_line)
            else:
                rows.append(_Row([stmt], stmt.meta.line, stmt.meta.end_line))
        for row in rows:
            row.verbatim = self._has_comment_inside(row.start, row.end)
        return rows

    def _body(self, body: list[tuple[bool, object]]) -> list[_Line]:
        out: list[_Line] = []
        # alignment sections: runs of elements without a blank line or a multi-line row between them
        sections: list[list[object]] = []
        for blank, thing in body:
            if blank or not sections or (isinstance(thing, _Row) and thing.verbatim):
                sections.append([])
            sections[-1].append((blank, thing))
            if isinstance(thing, _Row) and thing.verbatim:
                sections.append([])
        for section in sections:
            heads = [_head_and_rest(t.stmts[0]) for _, t in section
                     if isinstance(t, _Row) and not t.verbatim and len(t.stmts) == 1]
            width = max((len(h) for h, rest, align in heads if align and rest is not None), default=0)
            for blank, thing in section:
                if blank:
                    out.append(_Line(""))
                if isinstance(thing, int):
                    out.append(_Line(INDENT, self._comment(thing)))
                elif thing.verbatim:
                    first = thing.stmts[0].meta
                    last = max((s.meta for s in thing.stmts), key=lambda m: (m.end_line, m.end_column))
                    out += self._verbatim(first.line, first.column, last.end_line, last.end_column, INDENT)
                else:
                    if len(thing.stmts) == 1:
                        code = _joined(*_head_and_rest(thing.stmts[0])[:2], width)
                    else:
                        code = "  ".join(_joined(*_head_and_rest(s)[:2]) for s in thing.stmts)
                    out.append(_Line(INDENT + code, self._comment(thing.end), align=True))
        return out


def _render(lines: list[_Line]) -> str:
    """Join lines, aligning the comments of runs of consecutive commented statement lines."""
    i = 0
    while i < len(lines):
        if lines[i].align and lines[i].comment is not None:
            j = i
            while j < len(lines) and lines[j].align and lines[j].comment is not None:
                j += 1
            column = max(len(line.code) for line in lines[i:j]) + 2
            for line in lines[i:j]:
                line.code = line.code.ljust(column)
            i = j
        else:
            i += 1
    text = []
    for line in lines:
        if line.comment is None:
            text.append(line.code.rstrip())
        elif not line.code.strip():
            text.append(line.code + line.comment)
        elif line.align:
            text.append(line.code + line.comment)
        else:
            text.append(line.code.rstrip() + "  " + line.comment)
    while text and not text[0]:
        text.pop(0)
    return "\n".join(text).rstrip("\n") + "\n" if text else ""


def _comments(text: str) -> dict[int, tuple[int, str]]:
    """line → (column, comment text) of every '#' comment outside strings."""
    found: dict[int, tuple[int, str]] = {}
    line, line_start, i = 1, 0, 0
    while i < len(text):
        c = text[i]
        if c == "\n":
            line, line_start = line + 1, i + 1
            i += 1
        elif c == "#":
            end = text.find("\n", i)
            end = len(text) if end < 0 else end
            found[line] = (i - line_start + 1, text[i:end].rstrip())
            i = end
        elif c in "\"'":
            i += 1
            while i < len(text) and text[i] not in (c, "\n"):
                i += 2 if text[i] == "\\" and text[i + 1:i + 2] not in ("", "\n") else 1
            i += 1 if i < len(text) and text[i] == c else 0
        else:
            i += 1
    return found
