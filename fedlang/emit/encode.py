"""The one way spec-derived text reaches generated source, and the check that it did.

Every value that comes from a spec (names, strings, numbers, file names, the spec's own lines)
enters the emitted program through exactly one of these encoders, chosen by its context:

- `literal`    a Python expression: `repr` for str/int/float/bool/None (non-finite floats as
               `float('inf')`), lists/tuples/dicts recursively, PyRef/PyCall/PyAttr/PyOp from the
               lowering (names checked as identifiers);
- `comment`    text after `#`: one line of printable characters (others become `?`);
- `word`       a registry name or a number inside fixed prose (docstrings): must already be a
               plain identifier/number, anything else is refused;
- `identifier` a Python name built from a spec name: an ASCII identifier, not a keyword.

Spec text never goes into a docstring or onto lines 1–2 (where Python looks for a PEP 263
`coding:` cookie). `program_bytes` encodes the program as it is written to disk and proves
that Python will read it as intended: the bytes' encoding is UTF-8, and compiling the bytes
gives the same AST as parsing the text.
"""

from __future__ import annotations

import ast as pyast
import keyword
import math
import re
import tokenize
from io import BytesIO
from typing import Any

from ..plan import PyAttr, PyCall, PyOp, PyRef

# The first two lines of every emitted program: fixed text, so no spec can declare an encoding.
HEADER = "#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n"


class EmitError(Exception):
    """The emitter was about to write something unsafe or invalid (a bug in fedlang, not in the spec)."""


def literal(value: Any) -> str:
    """Python source for a literal, a PyRef or a PyCall (arguments rendered recursively)."""
    if isinstance(value, PyRef):
        return dotted(value.name)
    if isinstance(value, PyCall):
        args = ", ".join(literal(v) if k is None else f"{identifier(k)}={literal(v)}" for k, v in value.args)
        return f"{_callee(value.func)}({args})"
    if isinstance(value, PyAttr):
        return f"{literal(value.value)}.{identifier(value.name)}"
    if isinstance(value, PyOp):
        if value.op not in ("+", "-", "*", "/"):
            raise EmitError(f"unknown operator {value.op!r}")
        return f"{literal(value.left)} {value.op} {literal(value.right)}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(literal(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({repr(value)!r})"
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    raise EmitError(f"cannot render {type(value).__name__} as a Python literal")


def literal_wrapped(value: Any, indent: int = 4, width: int = 96) -> str:
    """Like `literal`, but a call too long for one line gets one argument per line."""
    flat = literal(value)
    if not isinstance(value, PyCall) or indent + len(flat) <= width:
        return flat
    pad = " " * (indent + 4)
    args = [literal_wrapped(v, indent + 4, width) if k is None
            else f"{identifier(k)}={literal_wrapped(v, indent + 4, width - len(k) - 1)}"
            for k, v in value.args]
    return f"{_callee(value.func)}(\n" + "".join(f"{pad}{a},\n" for a in args) + " " * indent + ")"


def _callee(func: "str | PyCall") -> str:
    return literal(func) if isinstance(func, PyCall) else dotted(func)


def comment(text: Any) -> str:
    """Text safe inside a `#` comment: one line, printable characters only (others become '?')."""
    return "".join(c if c.isprintable() else "?" for c in str(text)).rstrip()


_WORD = re.compile(r"[A-Za-z0-9_.+-]*")


def word(value: Any) -> str:
    """A registry name or a number for fixed prose (docstrings); refuses anything else."""
    text = str(value)
    if isinstance(value, (str, int, float)) and not isinstance(value, bool) and _WORD.fullmatch(text):
        return text
    raise EmitError(f"{text!r} may not appear in a docstring")


def identifier(name: str) -> str:
    """A Python name derived from a spec name: ASCII identifier, not a keyword."""
    if isinstance(name, str) and name.isascii() and name.isidentifier() and not keyword.iskeyword(name):
        return name
    raise EmitError(f"{name!r} is not a safe Python identifier")


def dotted(name: str) -> str:
    """A called name such as `tff.learning.algorithms.build_weighted_fed_avg`."""
    for part in str(name).split("."):
        identifier(part)
    return name


def targets(text: str) -> str:
    """The left side of an assignment written by a construct (`x, y, client_ids`): names only."""
    try:
        tree = pyast.parse(f"{text} = None", mode="exec")
    except SyntaxError:
        raise EmitError(f"{text!r} is not an assignment target") from None
    (assign,) = tree.body
    for node in pyast.walk(assign.targets[0]):
        if isinstance(node, pyast.Name):
            identifier(node.id)
        elif not isinstance(node, (pyast.Tuple, pyast.Store)):
            raise EmitError(f"{text!r} may only assign to names")
    return text


def program_bytes(text: str, filename: str = "<emitted program>") -> bytes:
    """The program as written to disk (UTF-8), after proving Python loads those bytes as `text`.

    Python decides a file's encoding from its first two lines, then parses the decoded text;
    `ast.parse(text)` skips that first step. So: the header is ours, the encoding it declares is
    UTF-8, and compiling the bytes yields exactly the AST of the text we rendered.
    """
    if not text.startswith(HEADER):
        raise EmitError("the emitted program must start with fedlang's fixed two-line header")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EmitError(f"the emitted program is not encodable as UTF-8: {exc}") from None
    encoding, _ = tokenize.detect_encoding(BytesIO(data).readline)
    if encoding not in ("utf-8", "utf-8-sig"):
        raise EmitError(f"the emitted program declares encoding {encoding!r}")
    try:
        loaded = compile(data, filename, "exec", pyast.PyCF_ONLY_AST, dont_inherit=True)
        intended = pyast.parse(text, filename)
    except SyntaxError as exc:
        raise EmitError(f"the emitted program is not valid Python (line {exc.lineno}: {exc.msg})") from None
    if pyast.dump(loaded) != pyast.dump(intended):
        raise EmitError("the emitted program's bytes do not compile to the program that was rendered")
    return data
