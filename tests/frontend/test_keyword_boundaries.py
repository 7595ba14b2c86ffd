"""Keywords end at a word boundary: `aggregaterobust(` is one name, not `aggregate robust(`.

Lark's contextual lexer offers each parser state only the terminals it accepts; where a keyword
but no name was expected, a keyword glued to the next word used to lex as the keyword plus a
word, so the spec silently meant something else. Every keyword of the grammar is tried here.
"""

from __future__ import annotations

import re

import pytest

from fedlang.diagnostics import Source, SpecError
from fedlang.parse import grammar_text, parse_source

# Parses (it need not check): every keyword of the grammar appears in it at least once.
SPEC = """experiment "e"
seed 1
model m {
  input [3]
  dense 2 true relu false
  loss sparse_categorical_crossentropy
  metrics accuracy
}
data d {
  source x
}
train fedavg {
  rounds 5
}
evaluate { every 1 }
privacy { noise 1 }
aggregation { x 1 }
attack { x 1 }
simulation { x 1 }
personalize { x 1 }
runtime { x 1 }
monitor {
  checkpoint every 5
  alert loss not improving by 0.1 for 3 rounds -> stop
  alert epsilon > 0.9 of target -> stop
  alert nan -> stop
}
aggregate robust(update: float32[*] @CLIENTS) -> float32[*] @SERVER {
  return mean(update)
}
round {
  w @CLIENTS = broadcast(model)
}
"""

KEYWORDS = sorted(set(re.findall(r'"([a-z_]+)"', grammar_text())))


def parse(text: str):
    return parse_source(Source("k.fed", text))


def meaning(tree) -> str:
    """The AST without positions (gluing two words moves every column after them)."""
    return re.sub(r"span=Span\([^)]*\)", "", repr(tree))


def variants(keyword: str):
    """SPEC with one occurrence of `keyword` glued to the word after it, or to `zz`."""
    for m in re.finditer(rf"(?<![\w\"]){keyword}(?![\w\"])", SPEC):
        after = SPEC[m.end():]
        if re.match(r" \w", after):
            yield SPEC[:m.end()] + after[1:]
        yield SPEC[:m.end()] + "zz" + after


def test_spec_uses_every_keyword():
    assert KEYWORDS and len(KEYWORDS) >= 25
    original = parse(SPEC)
    assert original.items
    missing = [k for k in KEYWORDS if not re.search(rf"(?<![\w\"]){k}(?![\w\"])", SPEC)]
    assert not missing


@pytest.mark.parametrize("keyword", KEYWORDS)
def test_glued_keyword_is_not_the_keyword(keyword):
    original = meaning(parse(SPEC))
    tried = 0
    for text in variants(keyword):
        tried += 1
        try:
            tree = parse(text)
        except SpecError as exc:
            assert all(d.code.startswith("E1") and d.span.line >= 1 for d in exc.diagnostics)
            continue
        assert meaning(tree) != original, f"{keyword!r} glued to the next word parsed as the keyword"
    assert tried


@pytest.mark.parametrize("text, said", [
    ("aggregaterobust(update: float32[*] @CLIENTS) -> float32[*] @SERVER {\n return mean(update)\n}\n",
     "did you mean `aggregate robust`?"),
    ("seed1\n", "did you mean `seed 1`?"),
    ("model m {\n input [3]\n}\nmonitor {\n checkpointevery 5\n}\n", "did you mean `checkpoint every`?"),
])
def test_glued_keyword_error_says_where_the_space_goes(text, said):
    with pytest.raises(SpecError) as info:
        parse(text)
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "E118"
    assert diagnostic.hint == said
    assert diagnostic.span.column == 1 or diagnostic.span.line > 1


def test_typo_stays_a_typo():
    with pytest.raises(SpecError) as info:
        parse("models m {\n}\n")
    assert info.value.diagnostics[0].code == "E111"
