"""Text → parse tree → typed AST.

`parse_source` is the only entry point. Syntax errors become positioned diagnostics; the
messages for common mistakes come from a table of example broken specs (the technique of
lark's own `load_grammar.py`), so a new message is one more row in `SYNTAX_ERROR_EXAMPLES`.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from pathlib import Path

import lark
from lark import Lark, Transformer, Token, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import ast
from .diagnostics import Diagnostic, Source, Span, SpecError, did_you_mean
from .registry import BLOCK_BY_KEYWORD, BLOCK_KEYWORDS, MODEL_LINES, home_of
from .files import MAX_SPEC_BYTES, read_regular_file

MODEL_KEYWORDS = MODEL_LINES

# Broken snippets and the message each family of mistakes gets. The parser state at the
# error is matched against these examples, so one row covers every spec failing the same way.
SYNTAX_ERROR_EXAMPLES: dict[tuple[str, str, str | None], list[str]] = {
    ("E102", "a setting needs a value", "write `key value`, e.g. `rounds 50`"): [
        "train fedavg {\n rounds\n}",
        "data {\n source\n}",
        "train fedavg { rounds }",
        "train fedavg {\n rounds 5 local\n}",
        "data {\n batch 5 shuffle\n}",
    ],
    ("E103", "expected '{' to open the block", "blocks look like `model mlp { … }`"): [
        "model mlp\n",
        "train fedavg\n",
        "data digits\n",
        "data\n",
        "evaluate\n",
    ],
    ("E104", "a block needs a name here", "write e.g. `model mlp {` or `train fedavg {`"): [
        "model {",
        "train {",
    ],
    ("E105", "missing value after '='", "keyword arguments look like `alpha = 0.5`"): [
        "data {\n partition dirichlet(alpha = )\n}",
        "model m {\n conv2d 3 kernel =\n}",
    ],
    ("E106", "unclosed '(' in a call", "close the argument list with ')'"): [
        "data {\n partition dirichlet(alpha = 0.5\n}",
        "data {\n partition dirichlet(0.5\n}",
    ],
    ("E107", "unclosed '[' in a list", "close the list with ']'"): [
        "model m {\n input [64\n}",
        "model m {\n input [64, 3\n}",
    ],
    ("E108", "separate list items and arguments with ','",
     "e.g. `[8, 8, 1]` or `dirichlet(alpha = 0.5, clients = 10)`"): [
        "model m {\n input [8 8]\n}",
        "data {\n partition dirichlet(alpha = 0.5 clients = 3)\n}",
    ],
    ("E109", "one model line per layer", "put each layer on its own line"): [
        "model m {\n input [64] dense 10\n}",
        "model m {\n loss x metrics [a]\n}",
    ],
    ("E112", "settings are written `key value`, without '='",
     "write e.g. `rounds 50`; '=' is only for options inside a call or on a layer, e.g. `iid(clients = 10)`"): [
        "train fedavg {\n rounds = 5\n}",
        "data {\n partition = iid(clients = 3)\n}",
        "model m {\n input = [64]\n}",
        "model m {\n dense = 10\n}",
    ],
    ("E116", "the parts of a line are separated by spaces, not ','",
     "write e.g. `dense 128 relu` or `batch 32  shuffle 100`; ',' separates items inside [ ] and ( )"): [
        "model m {\n dense 10, relu\n}",
        "model m {\n input [8], \n}",
        "data {\n batch 32, shuffle 5\n}",
        "seed 1,\n",
    ],
    ("E117", "a layer line is written without parentheses",
     "write e.g. `dense 128 relu` or `conv2d 32 relu kernel = 3`"): [
        "model m {\n dense(10)\n}",
    ],
}

# Labels whose examples match only on the very token they fail at: the parser state alone
# (after a setting's or a layer's name) is shared with other mistakes.
EXACT_TOKEN_ONLY = {"E112", "E116", "E117"}

# Lark's LALR parser costs ~30-50 µs of CPU per token, so a 1 MiB spec of short tokens took ~20 s
# to check. The largest example has ~300 tokens; past MAX_TOKENS the spec is refused (E003)
# after one linear regex pass, before Lark sees it.
MAX_TOKENS = 10_000
_TOKEN = re.compile(r"""#[^\n]*|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|[A-Za-z_0-9.]+|->|\S""")

# Lists and calls nest; nobody needs more than a few levels, and the tree → AST transform is
# recursive, so absurd nesting is refused up front instead of overflowing the stack.
MAX_NESTING = 32


@functools.lru_cache(maxsize=1)
def grammar_text() -> str:
    """The grammar shipped in the `fedlang.grammar` package (the repo's grammar/ folder)."""
    return importlib.resources.files("fedlang.grammar").joinpath("fedlang.lark").read_text()


class _NamesEverywhere:
    """Lark post-lexer that only makes NAME part of every parser state's lexer.

    The contextual lexer gives each state only the terminals it can accept, so where a keyword
    is expected but no name (the top level, a model line's start), `aggregaterobust(` was read
    as `aggregate robust(` and `seed1` as `seed 1`. With NAME always present, a word is always
    lexed whole (Lark turns a NAME equal to a keyword into the keyword), so a keyword glued to
    a name is one unexpected name: a syntax error (E118).
    """

    always_accept = ("NAME",)

    def process(self, stream):
        return stream


@functools.lru_cache(maxsize=1)
def parser() -> Lark:
    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="contextual",
        postlex=_NamesEverywhere(),
        propagate_positions=True,
        cache=True,  # LALR tables pickled in the temp dir: ~0.35 s saved per command
        maybe_placeholders=False,
    )


def read_source(path: str | Path, display_name: str | None = None) -> Source:
    """Read a spec file as UTF-8; undecodable or NUL bytes are reported with their position."""
    path = Path(path)
    name = display_name or str(path)
    data = read_regular_file(path, MAX_SPEC_BYTES)  # OSError for a FIFO, device or directory
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(Source(name, ""), [Diagnostic(
            "E002", f"the file is larger than {MAX_SPEC_BYTES / (1 << 20):g} MiB, the limit for a spec",
            Span.point(1, 1), hint="is this a .fed spec? a spec is a page of text; data belongs in the "
                                   "file its `source` names")])
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark, as some Windows editors write
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = data[: exc.start].decode("utf-8")
        source = Source(name, good)
        looks_like_text = exc.start > 0 and all(c.isprintable() or c in "\t\r\n" for c in good)
        hint = ("the file looks like text in another encoding (e.g. Latin-1 or Windows-1252): "
                "save it as UTF-8" if looks_like_text else "is this a .fed spec? fedlang reads UTF-8 text")
        raise SpecError(
            source,
            [
                Diagnostic(
                    "E001",
                    f"file is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})",
                    _span_at(good, len(good)),
                    hint=hint,
                )
            ],
        ) from None
    return Source(name, text)


def parse_source(source: Source) -> ast.Spec:
    """Parse a spec into the typed AST, or raise SpecError with positioned diagnostics."""
    if "\x00" in source.text:
        offset = source.text.index("\x00")
        raise SpecError(
            source,
            [Diagnostic("E001", "file contains a NUL byte", _span_at(source.text, offset),
                        hint="is this a .fed spec? fedlang reads UTF-8 text")],
        )
    lone_cr = re.search(r"\r(?!\n)", source.text)
    if lone_cr:
        raise SpecError(
            source,
            [Diagnostic("E001", "file uses '\\r' line endings without '\\n' (classic Mac OS style)",
                        _span_at(source.text, lone_cr.start()),
                        hint="save the file with Unix (\\n) or Windows (\\r\\n) line endings")],
        )
    text = source.text if source.text.endswith("\n") else source.text + "\n"
    if text.startswith("\ufeff"):  # byte-order mark: blank it out, keeping every column in place
        text = " " + text[1:]
    too_many = _past_token_limit(text)
    if too_many is not None:
        raise SpecError(
            source,
            [Diagnostic("E003", f"the spec has more than {MAX_TOKENS:,} tokens (names, numbers, strings, "
                                f"symbols); this one is the first past the limit",
                        _span_at(text, too_many),
                        hint="a spec is a page of text (the largest example has ~300 tokens): put long "
                             "lists of values in a data file, or split the experiment into several specs")],
        )
    too_deep = _too_deep(text)
    if too_deep is not None:
        raise SpecError(
            source,
            [Diagnostic("E115", f"lists and calls are nested more than {MAX_NESTING} levels deep",
                        _span_at(text, too_deep), hint="flatten the value; shapes and options need a level or two")],
        )
    try:
        tree = parser().parse(text)
    except UnexpectedInput as exc:
        raise SpecError(source, [_syntax_diagnostic(source, text, exc)]) from None
    bad_strings = [_bad_escape(token) for token in tree.scan_values(
        lambda v: isinstance(v, Token) and v.type == "STRING")]
    bad_strings = [d for d in bad_strings if d is not None]
    if bad_strings:
        raise SpecError(source, bad_strings)
    return ToAst().transform(tree)


def _bad_escape(token: Token) -> Diagnostic | None:
    """E114 for a string whose backslash escapes do not decode (`"\\x"`, `"\\N{nope}"`)."""
    body = str(token)[1:-1]
    for m in _ESCAPE.finditer(body):
        try:
            m.group(0).encode("latin-1", "backslashreplace").decode("unicode_escape")
        except UnicodeDecodeError:
            column = token.column + 1 + m.start()
            return Diagnostic("E114", f"invalid escape sequence '{m.group(0)}' in a string",
                              Span(token.line, column, token.line, column + len(m.group(0))),
                              hint="write a backslash as '\\\\' (in file paths, '/' works too)")
    try:
        _unquote(token)
    except UnicodeDecodeError as exc:
        return Diagnostic("E114", f"invalid escape sequence in a string ({exc.reason})", _span(token),
                          hint="write a backslash as '\\\\'")
    return None


_ESCAPE = re.compile(r"\\(N\{[^}]*\}?|x[0-9a-fA-F]{0,2}|u[0-9a-fA-F]{0,4}|U[0-9a-fA-F]{0,8}|.)")


def _past_token_limit(text: str) -> int | None:
    """Offset of the first token past MAX_TOKENS (comments do not count), if there is one.
    A cheap over-estimate of Lark's count: `1e-3` counts as three, a number glued to a name as one."""
    if len(text) < MAX_TOKENS:  # every token is at least one character
        return None
    count = 0
    for m in _TOKEN.finditer(text):
        if text[m.start()] != "#":
            count += 1
            if count > MAX_TOKENS:
                return m.start()
    return None


def _too_deep(text: str) -> int | None:
    """Offset of the first '[' or '(' nested deeper than MAX_NESTING."""
    depth = 0
    for i, c in _code(text, len(text)):
        if c in "([":
            depth += 1
            if depth > MAX_NESTING:
                return i
        elif c in ")]":
            depth = max(depth - 1, 0)
    return None


def _code(text: str, limit: int):
    """(offset, character) of the text before `limit` outside comments and strings."""
    i = 0
    while i < limit:
        c = text[i]
        if c == "#":
            end = text.find("\n", i)
            i = limit if end < 0 else end
        elif c in "\"'":  # a string ends at its closing quote or, unterminated, at the line's end
            i += 1
            while i < len(text) and text[i] not in (c, "\n"):
                i += 2 if text[i] == "\\" and text[i + 1:i + 2] not in ("", "\n") else 1
            i += 1 if i < len(text) and text[i] == c else 0
        else:
            yield i, c
            i += 1


# ---------------------------------------------------------------- tree → AST


def _span(meta_or_token) -> Span:
    if isinstance(meta_or_token, Token):
        return Span(meta_or_token.line, meta_or_token.column,
                    meta_or_token.end_line, meta_or_token.end_column)
    return Span(meta_or_token.line, meta_or_token.column,
                meta_or_token.end_line, meta_or_token.end_column)


def _ident(token: Token) -> ast.Ident:
    return ast.Ident(str(token), _span(token))


@v_args(meta=True)
class ToAst(Transformer):
    """Builds AST nodes from the parse tree; no validation happens here."""

    def start(self, meta, items):
        return ast.Spec(tuple(items))

    def experiment(self, meta, children):
        (token,) = children
        return ast.Experiment(ast.String(_unquote(token), _span(token)), _span(meta))

    def seed(self, meta, children):
        return ast.Seed(children[0], _span(meta))

    def model(self, meta, children):
        name, *items = children
        return ast.ModelBlock(_ident(name), tuple(items), _span(meta))

    def input_decl(self, meta, children):
        return ast.InputDecl(children[0], _span(meta))

    def loss_decl(self, meta, children):
        return ast.LossDecl(children[0], _span(meta))

    def metrics_decl(self, meta, children):
        return ast.MetricsDecl(children[0], _span(meta))

    def layer(self, meta, children):
        kind, *args = children
        return ast.Layer(_ident(kind), tuple(_as_arg(a) for a in args), _span(meta))

    def data(self, meta, children):
        name = _ident(children[0]) if children and isinstance(children[0], Token) else None
        settings = children[1:] if name else children
        return ast.DataBlock(name, tuple(settings), _span(meta))

    def train(self, meta, children):
        algorithm, *settings = children
        return ast.TrainBlock(_ident(algorithm), tuple(settings), _span(meta))

    def evaluate(self, meta, children):
        return ast.EvaluateBlock(tuple(children), _span(meta))

    def privacy(self, meta, children):
        return ast.PrivacyBlock(tuple(children), _span(meta))

    def aggregation(self, meta, children):
        return ast.AggregationBlock(tuple(children), _span(meta))

    def attack(self, meta, children):
        return ast.AttackBlock(tuple(children), _span(meta))

    def simulation(self, meta, children):
        return ast.SimulationBlock(tuple(children), _span(meta))

    def personalize(self, meta, children):
        return ast.PersonalizeBlock(tuple(children), _span(meta))

    def runtime(self, meta, children):
        return ast.RuntimeBlock(tuple(children), _span(meta))

    def aggregate(self, meta, children):
        name, *rest = children
        params = tuple(c for c in rest if isinstance(c, ast.FedParam))
        result = next(c for c in rest if isinstance(c, ast.FedTypeSyntax))
        steps = tuple(c for c in rest if isinstance(c, (ast.Assign, ast.Return)))
        return ast.AggregateBlock(_ident(name), params, result, steps, _span(meta))

    def round(self, meta, children):
        return ast.RoundBlock(tuple(children), _span(meta))

    def monitor(self, meta, children):
        return ast.MonitorBlock(tuple(children), _span(meta))

    def monitor_checkpoint(self, meta, children):
        return ast.MonitorCheckpoint(children[0], _span(meta))

    def alert(self, meta, children):
        kind, metric, op, value, unit, *by = children[0]
        return ast.Alert(kind, metric, op, value, unit, _ident(children[1]), _span(meta), by[0] if by else None)

    def threshold_condition(self, meta, children):
        metric, op, value, *of = children
        return ("threshold", _ident(metric), _ident(op), value, _ident(of[0]) if of else None)

    def plateau_condition(self, meta, children):
        metric, *by, value, unit = children
        return ("not_improving", _ident(metric), None, value, _ident(unit), by[0] if by else None)

    def nan_condition(self, meta, children):
        return ("nan", None, None, None, None)

    def fed_param(self, meta, children):
        name, type_ = children
        return ast.FedParam(_ident(name), type_, _span(meta))

    def fed_type(self, meta, children):
        dtype, *rest = children
        dims = rest[0] if len(rest) == 2 else ()
        return ast.FedTypeSyntax(_ident(dtype), dims, rest[-1], _span(meta))

    def dims(self, meta, children):
        return tuple(children)

    def dim(self, meta, children):
        return _number(str(children[0]))

    def model_dim(self, meta, children):
        return "*"

    def unknown_dim(self, meta, children):
        return "?"

    def placement(self, meta, children):
        (token,) = children
        return ast.Ident(str(token), Span(meta.line, meta.column, meta.end_line, meta.end_column))

    def assign(self, meta, children):
        target, placement, value = children
        return ast.Assign(_ident(target), placement, value, _span(meta))

    def return_stmt(self, meta, children):
        return ast.Return(children[0], _span(meta))

    def setting(self, meta, children):
        key, value = children
        return ast.Setting(_ident(key), value, _span(meta))

    # values
    def number(self, meta, children):
        (token,) = children
        return ast.Number(_number(str(token)), str(token), _span(token))

    def negative(self, meta, children):
        (token,) = children
        value = -_number(str(token))
        # -0.0 is 0: NumPy refuses a scale of -0.0 (`normal(0, -0.0)`: "scale < 0")
        return ast.Number(abs(value) if value == 0 else value, "-" + str(token), _span(meta))

    def string(self, meta, children):
        (token,) = children
        return ast.String(_unquote(token), _span(token))

    def true(self, meta, children):
        return ast.Bool(True, _span(meta))

    def false(self, meta, children):
        return ast.Bool(False, _span(meta))

    def list(self, meta, children):
        return ast.ListValue(tuple(children), _span(meta))

    def call(self, meta, children):
        name, *args = children
        return ast.Call(name, tuple(_as_arg(a) for a in args), _span(meta))

    def keyword_arg(self, meta, children):
        key, value = children
        return ast.Arg(_ident(key), value, _span(meta))

    def dotted(self, meta, children):
        return ast.Name(tuple(str(t) for t in children), _span(meta))


def _as_arg(node) -> ast.Arg:
    return node if isinstance(node, ast.Arg) else ast.Arg(None, node, node.span)


def _number(text: str) -> int | float:
    if any(c in text for c in ".eE"):
        return float(text)
    if len(text) > _MAX_DIGITS:  # int() refuses more than 4300 digits; a value this large fails every range
        return int(text[:_MAX_DIGITS]) * 10 ** (len(text) - _MAX_DIGITS)  # check, which shows its text
    return int(text)


_MAX_DIGITS = 4000


def _unquote(token: Token) -> str:
    body = str(token)[1:-1]
    return body.encode("latin-1", "backslashreplace").decode("unicode_escape") if "\\" in body else body


# ---------------------------------------------------------------- syntax errors


def _span_at(text: str, offset: int) -> Span:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return Span.point(line, column)


_TERMINAL_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "_NL": "end of line",
    "$END": "end of file",
    "MINUS": "'-'",
}


def _describe_terminal(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    try:
        pattern = parser().get_terminal(name).pattern
    except KeyError:
        return name.lower()
    return f"'{pattern.value}'" if pattern.type == "str" else name.lower()


def _found(token: Token) -> str:
    if token.type == "_NL":
        return "end of line"
    if token.type == "$END":
        return "end of file"
    return f"'{token}'"


_FED_TYPE_PUNCTUATION = (":", "@", "*", "?", "->")


def _expected_literals(exc: UnexpectedToken) -> set[str]:
    return {_describe_terminal(e).strip("'") for e in exc.expected}


def _character_diagnostic(char: str, line: int, column: int) -> Diagnostic:
    """A character that cannot start any token here (or only means something in aggregate blocks)."""
    shown = repr(char) if not char.isprintable() or char.isspace() else f"'{char}'"
    message, hint = f"unexpected character {shown}", None
    if char in "\"'":
        message = "this string is never closed"
        hint = f"strings end on the line they start: add the closing {char}"
    elif char == ":":
        hint = "settings are written `key value`, without ':'"
    elif char == ";":
        hint = "put each statement on its own line instead of using ';'"
    elif char in "\u201c\u201d\u2018\u2019":
        hint = "use straight quotes \"…\" (word processors turn them into curly ones)"
    elif char in "/\\":
        hint = 'file paths are strings: quote them, e.g. npz("data/train.npz")'
    elif char.isdigit() or char.isnumeric():
        hint = "numbers are written with the digits 0-9"
    elif char.isprintable() and not char.isspace():
        hint = ("a spec is made of names, numbers, \"strings\", true/false, [lists], calls(…), "
                "{ } blocks, '=', ',', '-' and # comments")
    return Diagnostic("E101", message, Span.point(line, column), hint)


def _syntax_diagnostic(source: Source, text: str, exc: UnexpectedInput) -> Diagnostic:
    if isinstance(exc, UnexpectedToken) and str(exc.token) in _FED_TYPE_PUNCTUATION \
            and str(exc.token) not in _expected_literals(exc):
        # ':', '@', '*', '?' and '->' only mean something in aggregate signatures and steps.
        return _character_diagnostic(str(exc.token)[0], exc.token.line, exc.token.column)
    if isinstance(exc, UnexpectedCharacters):
        return _character_diagnostic(text[exc.pos_in_stream], exc.line, exc.column)

    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        opened = _unclosed_brace(text)
        if opened is not None:
            return Diagnostic("E110", "this block is never closed", _span_at(text, opened),
                              hint="add the matching '}'")
        return Diagnostic("E100", "unexpected end of file", _span_at(text, len(text.rstrip())))

    assert isinstance(exc, UnexpectedToken)
    token = exc.token
    span = Span(token.line, token.column, token.end_line or token.line,
                token.end_column or token.column + 1)
    if token.type == "_NL":  # point at the end of the line, not the start of the next
        span = Span.point(token.line, token.column)
    expected = sorted(exc.expected)
    keywords = [t for t in (_describe_terminal(e).strip("'") for e in expected)
                if t in BLOCK_KEYWORDS + MODEL_KEYWORDS]

    # A keyword glued to what follows it: `aggregaterobust(`, `seed1`, `inputx [3]`.
    glued = _glued_keyword(str(token), expected) if token.type == "NAME" else None
    if glued is not None:
        rest = str(token)[len(glued):]
        return Diagnostic("E118", f"'{token}' is not a keyword; '{glued}' needs a space after it", span,
                          f"did you mean `{glued} {rest}`?")

    # A misspelled block keyword at the top level: `modle mlp {`.
    if token.type == "NAME" and set(keywords) >= {"model", "data", "train"}:
        home = home_of(str(token))
        if home is not None and home[0] in BLOCK_BY_KEYWORD and not BLOCK_BY_KEYWORD[home[0]].line:
            block, what = home
            return Diagnostic("E111", f"'{token}' is {what}; it belongs inside the {block} block", span,
                              f"move it above the closing '}}' of the {block} block")
        hint = did_you_mean(str(token), BLOCK_KEYWORDS) or f"a spec is made of: {', '.join(BLOCK_KEYWORDS)}"
        return Diagnostic("E111", f"unknown block '{token}'", span, hint)

    # A block starting inside another one: the one above is missing its '}'.
    if token.type == "LBRACE":
        braces = _brace_stack(text, _offset(text, token))
        if braces:
            opened = _span_at(text, braces[-1])
            words = source.line_text(opened.line).split()
            block = words[0] if words and words[0] in BLOCK_KEYWORDS else "block"
            return Diagnostic("E110", f"the {block} block opened on line {opened.line} is not closed "
                                      f"before this one starts", span,
                              f"add '}}' at the end of the {block} block")

    if token.type == "RBRACE" and _open_braces(text, _offset(text, token)) == 0:
        return Diagnostic("E113", "unmatched '}'", span,
                          "no block is open here; remove it, or check the '{' of the block above")

    # `data "digits" {`: a quoted name.
    if token.type == "STRING" and "NAME" in exc.expected:
        return Diagnostic("E100", f"expected a name, found {_found(token)}", span,
                          f"names are written without quotes: {str(token)[1:-1]}")

    label = _match_example(exc)
    if label is not None:
        code, message, hint = label
        if code in ("E106", "E107"):  # point at the bracket left open, not where parsing gave up
            opener = _unclosed_bracket(text, "(" if code == "E106" else "[", _offset(text, token))
            if opener is not None:
                found = _found(token) + (f" on line {token.line}" if token.line != opener[0] else "")
                return Diagnostic(code, f"{message}; found {found}", Span.point(*opener), hint)
        found = "" if code in EXACT_TOKEN_ONLY else f"; found {_found(token)}"
        return Diagnostic(code, message + found, span, hint)

    wanted = ", ".join(dict.fromkeys(_describe_terminal(e) for e in expected))
    hint = f"expected one of: {wanted}"
    if expected == ["STRING"] and token.type in ("NAME", "NUMBER"):
        return Diagnostic("E100", f"expected a string, found {_found(token)}", span, f'quote it: "{token}"')
    return Diagnostic("E100", f"unexpected {_found(token)}", span, hint)


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _glued_keyword(word: str, expected: list[str]) -> str | None:
    """The longest expected keyword that `word` starts with and runs on from, if the rest looks
    like a separate word (a digit, or three or more letters: `models` is a typo, not `model s`)."""
    keywords = []
    for name in expected:
        try:
            pattern = parser().get_terminal(name).pattern
        except KeyError:
            continue
        if pattern.type == "str" and _WORD.fullmatch(pattern.value):
            keywords.append(pattern.value)
    for keyword in sorted(keywords, key=len, reverse=True):
        rest = word[len(keyword):]
        if word.startswith(keyword) and rest and (rest[0].isdigit() or len(rest) >= 3):
            return keyword
    return None


@functools.lru_cache(maxsize=1)
def _example_states() -> tuple[tuple[tuple[str, str, str | None], int, str], ...]:
    """(label, parser state, token type) of every example in SYNTAX_ERROR_EXAMPLES."""
    out = []
    for label, examples in SYNTAX_ERROR_EXAMPLES.items():
        for example in examples:
            try:
                parser().parse(example)
            except UnexpectedToken as exc:
                out.append((label, exc.state.position, exc.token.type))
            except UnexpectedInput:  # pragma: no cover - examples are token errors
                pass
            else:  # pragma: no cover
                raise AssertionError(f"syntax example parses: {example!r}")
    return tuple(out)


def _match_example(exc: UnexpectedToken):
    """The label of the example failing in the same parser state (and on the same kind of token).

    Lark's own `match_examples` also compares the depth of the parser's stack, so an example
    written at the top of a file never matches the same mistake after a `seed` line; the state
    alone says what the parser expected, which is what the message is about.
    """
    if exc.state is None:
        return None
    position = exc.state.position
    fallback = None
    for label, state, token_type in _example_states():
        if state != position:
            continue
        if token_type == exc.token.type:
            return label
        if label[0] not in EXACT_TOKEN_ONLY:
            fallback = fallback or label
    return fallback


def _offset(text: str, token: Token) -> int:
    start = getattr(token, "start_pos", None)
    return len(text) if start is None else start


def _unclosed_bracket(text: str, bracket: str, limit: int) -> tuple[int, int] | None:
    """(line, column) of the innermost `bracket` still open at offset `limit`."""
    closer = {"(": ")", "[": "]"}[bracket]
    stack: list[int] = []
    for i, c in _code(text, limit):
        if c == bracket:
            stack.append(i)
        elif c == closer and stack:
            stack.pop()
    if not stack:
        return None
    span = _span_at(text, stack[-1])
    return span.line, span.column


def _open_braces(text: str, limit: int) -> int:
    """How many '{' are open at offset `limit`."""
    return len(_brace_stack(text, limit))


def _unclosed_brace(text: str) -> int | None:
    """Offset of the last '{' left open (strings and comments skipped), if any."""
    stack = _brace_stack(text, len(text))
    return stack[-1] if stack else None


def _brace_stack(text: str, limit: int) -> list[int]:
    """Offsets of the '{' still open at offset `limit`, outermost first."""
    stack: list[int] = []
    for i, c in _code(text, limit):
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            stack.pop()
    return stack
