"""Highlighting: the Pygments lexer and the VS Code grammar use the registry's words, and agree."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest
from pygments.token import Comment, Error, Keyword, Name, Number, String

from fedlang import registry
from fedlang.tooling import editor_files
from fedlang.tooling.highlight import FedLexer
from fedlang.tooling.keywords_generated import KEYWORD_LISTS
from fedlang.tooling.vocabulary import keyword_lists

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "examples").rglob("*.fed"))


def test_generated_files_are_up_to_date():
    """Fails after a registry change until `python -m fedlang.tooling.editor_files` is run."""
    assert editor_files.GENERATED.read_text() == editor_files.generated_module_text()
    assert editor_files.TEXTMATE.read_text() == editor_files.textmate_text()


def test_lexer_textmate_and_registry_lists_agree():
    from_registry = keyword_lists()
    assert KEYWORD_LISTS == from_registry
    grammar = json.loads(editor_files.TEXTMATE.read_text())
    for kind, names in editor_files.textmate_word_lists(grammar).items():
        assert names == from_registry[kind], kind
    # the registry's own names are all there
    assert set(registry.BLOCK_KEYWORDS) <= set(from_registry["keywords"])
    assert set(registry.LAYERS) == set(from_registry["layers"])
    for names in (registry.SOURCES, registry.PARTITIONS, registry.CLIENT_OPTIMIZERS, registry.ROBUST_AGGREGATORS):
        assert set(names) <= set(from_registry["builtins"])


def _tokens(text: str) -> dict[str, object]:
    return {value: kind for kind, value in FedLexer().get_tokens(text) if value.strip()}


def test_lexer_classes():
    tokens = _tokens('experiment "x"  # note\nmodel m {\n  dense 10 softmax\n}\n'
                     "data {\n  source sklearn.digits\n  partition iid(clients = 10)\n}\n"
                     "aggregate clip(update: float32[*] @CLIENTS) -> float32[*] @SERVER {\n"
                     "  return mean(update)\n}\n")
    assert tokens["experiment"] is Keyword and tokens["model"] is Keyword and tokens["return"] is Keyword
    assert tokens['"x"'] in String and tokens["# note"] in Comment
    assert tokens["dense"] is Name.Class and tokens["softmax"] is Name.Builtin
    assert tokens["source"] is Name.Attribute and tokens["sklearn.digits"] is Name.Builtin
    assert tokens["clients"] is Name.Variable  # an option inside a call
    assert tokens["10"] in Number and tokens["clip"] is Name.Function and tokens["CLIENTS"] is Name.Decorator
    assert tokens["float32"] is Keyword.Type and tokens["mean"] is Name.Builtin


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_examples_lex_without_errors_and_round_trip(path):
    text = path.read_text()
    tokens = list(FedLexer().get_tokens(text))
    assert all(kind is not Error for kind, _ in tokens)
    expected = text if text.endswith("\n") else text + "\n"  # Pygments ends the text with a newline
    assert "".join(value for _, value in tokens) == expected


def test_entry_point_is_declared_and_resolves():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '[project.entry-points."pygments.lexers"]\nfed = "fedlang.tooling.highlight:FedLexer"' in pyproject
    installed = [ep for ep in importlib.metadata.entry_points(group="pygments.lexers") if ep.name == "fed"]
    if not installed:
        pytest.skip("the editable install predates the entry point: pip install --no-deps -e . to register it")
    assert installed[0].load() is FedLexer
    from pygments.lexers import get_lexer_by_name

    assert isinstance(get_lexer_by_name("fed"), FedLexer)


def test_vscode_extension_files():
    folder = ROOT / "editors" / "vscode"
    package = json.loads((folder / "package.json").read_text())
    language = package["contributes"]["languages"][0]
    assert language["extensions"] == [".fed"]
    assert (folder / language["configuration"]).exists()
    assert (folder / package["contributes"]["grammars"][0]["path"]).exists()
    assert package["contributes"]["configuration"]["properties"]["fedlang.command"]["default"] == ["fedlang", "lsp"]
    config = json.loads((folder / "language-configuration.json").read_text())
    assert config["comments"]["lineComment"] == "#" and ["{", "}"] in config["brackets"]
