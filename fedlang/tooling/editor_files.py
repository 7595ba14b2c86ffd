"""The generated editor files: the lexer's word lists and the TextMate grammar, from the registry.

    python -m fedlang.tooling.editor_files    # rewrites both after a registry change

tests/frontend/test_highlight.py fails when the files on disk differ from what this generates.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = Path(__file__).with_name("keywords_generated.py")
TEXTMATE = ROOT / "editors" / "vscode" / "syntaxes" / "fed.tmLanguage.json"



def generated_module_text() -> str:
    """The text of keywords_generated.py for the current registry."""
    from .vocabulary import keyword_lists

    body = json.dumps(keyword_lists(), indent=4)
    return ('"""Word lists of the .fed highlighters, generated from the registry: do not edit.\n\n'
            "Regenerate with `python -m fedlang.tooling.highlight`.\n\"\"\"\n\n"
            f"KEYWORD_LISTS = {body}\n")


_TM_SCOPES = {
    "keywords": "keyword.control.fed",
    "constants": "constant.language.fed",
    "types": "storage.type.fed",
    "layers": "entity.name.type.layer.fed",
    "settings": "variable.other.property.fed",
    "builtins": "support.function.fed",
}


def _alternation(names: list[str]) -> str:
    ordered = sorted(names, key=lambda n: (-len(n), n))
    return r"(?<![A-Za-z0-9_.])(?:" + "|".join(re.escape(n) for n in ordered) + r")(?![A-Za-z0-9_.])"


def textmate_grammar(lists: dict[str, list[str]] | None = None) -> dict:
    """The TextMate grammar (VS Code, Sublime, GitHub's linguist, …) for the current registry."""
    if lists is None:
        from .vocabulary import keyword_lists

        lists = keyword_lists()
    patterns = [
        {"name": "comment.line.number-sign.fed", "match": "#.*$"},
        {"name": "string.quoted.double.fed", "match": r'"([^"\\]|\\.)*"'},
        {"name": "string.quoted.single.fed", "match": r"'([^'\\]|\\.)*'"},
        {"match": r"(@)\s*([A-Za-z_][A-Za-z0-9_]*)",
         "captures": {"1": {"name": "keyword.operator.placement.fed"}, "2": {"name": "entity.name.tag.placement.fed"}}},
        {"match": r"\b(aggregate)\s+([A-Za-z_][A-Za-z0-9_]*)",
         "captures": {"1": {"name": "keyword.control.fed"}, "2": {"name": "entity.name.function.fed"}}},
    ]
    for kind, scope in _TM_SCOPES.items():
        patterns.append({"name": scope, "match": _alternation(lists[kind]), "comment": f"fedlang {kind}"})
    patterns.insert(5, {"match": r"([A-Za-z_][A-Za-z0-9_]*)\s*(=)",
                        "captures": {"1": {"name": "variable.parameter.fed"},
                                     "2": {"name": "keyword.operator.assignment.fed"}}})
    patterns += [
        {"name": "constant.numeric.fed", "match": r"(?<![A-Za-z0-9_])(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?"},
        {"name": "keyword.operator.fed", "match": r"->|[-*?:]"},
    ]
    return {
        "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json",
        "name": "fedlang",
        "scopeName": "source.fed",
        "fileTypes": ["fed"],
        "comment": "Generated from fedlang's registry by `python -m fedlang.tooling.highlight`: do not edit.",
        "patterns": patterns,
    }


def textmate_text() -> str:
    return json.dumps(textmate_grammar(), indent=2, ensure_ascii=False) + "\n"


def textmate_word_lists(grammar: dict) -> dict[str, list[str]]:
    """The word lists a TextMate grammar highlights, read back from its patterns."""
    out = {}
    for pattern in grammar["patterns"]:
        comment = pattern.get("comment", "")
        if comment.startswith("fedlang "):
            body = pattern["match"].split("(?:", 1)[1].rsplit(")(?!", 1)[0]
            out[comment[len("fedlang "):]] = sorted(re.sub(r"\\(.)", r"\1", n) for n in body.split("|"))
    return out


def main() -> None:
    GENERATED.write_text(generated_module_text(), encoding="utf-8")
    TEXTMATE.parent.mkdir(parents=True, exist_ok=True)
    TEXTMATE.write_text(textmate_text(), encoding="utf-8")
    print(f"wrote {GENERATED.relative_to(ROOT)} and {TEXTMATE.relative_to(ROOT)}")


if __name__ == "__main__":  # pragma: no cover
    main()
