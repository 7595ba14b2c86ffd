"""Syntax highlighting of .fed specs: the Pygments lexer (entry point `pygments.lexers: fed`).

Its word lists are fedlang/tooling/keywords_generated.py, written from the registry by
`python -m fedlang.tooling.editor_files` (which also writes the VS Code grammar), so the lexer
imports without the compiler; tests/frontend/test_highlight.py fails when they disagree.
"""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Text, Whitespace

from .keywords_generated import KEYWORD_LISTS

_NAME_END = r"(?![A-Za-z0-9_.])"


def _words(kind: str):
    return words(KEYWORD_LISTS[kind], prefix=r"(?<![A-Za-z0-9_.])", suffix=_NAME_END)


class FedLexer(RegexLexer):
    """Pygments lexer for fedlang `.fed` experiment specs."""

    name = "fedlang"
    aliases = ["fed", "fedlang"]
    filenames = ["*.fed"]
    mimetypes = ["text/x-fedlang"]
    url = "https://github.com/fedlang"

    tokens = {
        "root": [
            (r"\s+", Whitespace),
            (r"#.*?$", Comment.Single),
            (r'"([^"\\\n]|\\.)*"', String.Double),
            (r"'([^'\\\n]|\\.)*'", String.Single),
            (r"(@)(\s*)([A-Za-z_][A-Za-z0-9_]*)", bygroups(Operator, Whitespace, Name.Decorator)),
            (r"(aggregate)(\s+)([A-Za-z_][A-Za-z0-9_]*)", bygroups(Keyword, Whitespace, Name.Function)),
            (r"([A-Za-z_][A-Za-z0-9_]*)(\s*)(=)(?!=)", bygroups(Name.Variable, Whitespace, Operator)),  # option = value
            (_words("keywords"), Keyword),
            (_words("constants"), Keyword.Constant),
            (_words("types"), Keyword.Type),
            (_words("layers"), Name.Class),
            (_words("settings"), Name.Attribute),
            (_words("builtins"), Name.Builtin),
            (r"(\d+\.\d*|\.\d+|\d+)[eE][+-]?\d+", Number.Float),
            (r"\d+\.\d*|\.\d+", Number.Float),
            (r"\d+", Number.Integer),
            (r"->|[-=*?:]", Operator),
            (r"[{}()\[\],.]", Punctuation),
            (r"[A-Za-z_][A-Za-z0-9_]*", Name),
            (r".", Text),
        ],
    }
