"""Fuzzing the front end: whatever the input, `compile_source` raises SpecError or succeeds.

A traceback from `fedlang check` is a bug; these tests throw random bytes and random
mutations of examples/quickstart.fed (tokens and lines deleted, duplicated, swapped and
inserted) at the whole front end (parse → check → lower). They are seeded and bounded to a
few seconds; raise FEDLANG_FUZZ_CASES to search longer, e.g.

    FEDLANG_FUZZ_CASES=50000 .venv/bin/python -m pytest tests/frontend/test_fuzz_frontend.py
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedlang.diagnostics import Source, SpecError, render_all
from fedlang.pipeline import compile_source

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = (ROOT / "examples" / "quickstart.fed").read_text()
TOKENS = re.findall(r"\s+|\w+|[^\w\s]", QUICKSTART)
LINES = QUICKSTART.splitlines(keepends=True)
CASES = int(os.environ.get("FEDLANG_FUZZ_CASES", "1500"))

# Words and fragments worth splicing in: other blocks' settings, every kind of value, nesting,
# escapes, huge numbers, other sources and algorithms, odd whitespace and line endings.
VOCABULARY = sorted(set(TOKENS)) + [
    "-", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", ";", "\n", "\r\n", "\r", "\t", "\x0c",
    '"x"', '"\\x"', '"\\U"', "'a'", '"', "0", "1", "-1", "1.5", "1e400", "99999999999999999999", ".5",
    "true", "false", "natural", "split", "none", "flatten", "conv2d 4 relu", "maxpool 2", "maxpool 9",
    "reshape [8, 8, 1]", "reshape [0]", "fedprox", "fedsgd", "mu 0.1", "binary_crossentropy", "auc",
    "sigmoid", "linear", 'npz("a.npz")', 'csv("a.csv", client = "u")', "emnist", "synthetic(devices = 3)",
    "sklearn.breast_cancer", "sklearn.iris", "shards(clients = 3)", "iid(clients = 2000)", "[8, 8]",
    "[0]", "[]", "()", "[[1]]", "f(g(h(1)))", "test", "evaluate { every 2 }", "kernel = [2, 2]",
    "strides = 0", "padding = same", "use_bias = false", "weighting uniform", "clients_per_round 99",
    "\ufeff", "\x00", "é", "“", "#", "model", "data", "train", "experiment", "seed",
]


def compile_or_spec_error(text: str, base_dir: Path) -> None:
    """Compile `text`; a SpecError must carry renderable diagnostics, anything else fails."""
    source = Source("fuzz.fed", text)
    try:
        compile_source(source, base_dir=base_dir)
    except SpecError as exc:
        assert exc.diagnostics, "SpecError without diagnostics"
        rendered = render_all(exc.source, exc.diagnostics)
        assert rendered.startswith("fuzz.fed:")
        for diag in exc.diagnostics:
            assert diag.span.line >= 1 and diag.span.column >= 1, diag


def mutate_tokens(rng: random.Random) -> str:
    tokens = list(TOKENS)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(tokens) + 1)
        op = rng.random()
        if op < 0.25 and tokens:
            del tokens[min(i, len(tokens) - 1)]
        elif op < 0.45 and tokens:
            tokens.insert(i, rng.choice(tokens))
        elif op < 0.6 and len(tokens) > 1:
            j, k = rng.randrange(len(tokens)), rng.randrange(len(tokens))
            tokens[j], tokens[k] = tokens[k], tokens[j]
        else:
            tokens.insert(i, rng.choice(VOCABULARY))
    return "".join(tokens)


def mutate_lines(rng: random.Random) -> str:
    lines = list(LINES)
    for _ in range(rng.randint(1, 3)):
        if not lines:
            break
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        op = rng.random()
        if op < 0.4:
            del lines[i]
        elif op < 0.7:
            lines.insert(i, lines[j])
        else:
            lines[i], lines[j] = lines[j], lines[i]
    return "".join(lines)


def random_bytes(rng: random.Random) -> str:
    data = bytes(rng.randrange(256) for _ in range(rng.randrange(80)))
    return data.decode("utf-8", errors=rng.choice(["replace", "ignore", "surrogateescape"]))


@pytest.mark.parametrize("kind", ["tokens", "lines", "bytes"])
def test_seeded_mutations_only_raise_spec_error(kind, tmp_path):
    make = {"tokens": mutate_tokens, "lines": mutate_lines, "bytes": random_bytes}[kind]
    rng = random.Random(f"fedlang-{kind}")
    count = CASES if kind == "tokens" else CASES // 3
    for _ in range(count):
        text = make(rng)
        try:
            compile_or_spec_error(text, tmp_path)
        except AssertionError:
            raise
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{type(exc).__name__}: {exc}\non input:\n{text!r}")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_arbitrary_bytes(tmp_path, data):
    compile_or_spec_error(data.decode("utf-8", errors="replace"), tmp_path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, len(TOKENS)), st.sampled_from(VOCABULARY)), min_size=1, max_size=4),
       st.lists(st.integers(0, len(TOKENS) - 1), max_size=3))
def test_spliced_quickstart(tmp_path, inserts, deletes):
    tokens = list(TOKENS)
    for i in sorted(set(deletes), reverse=True):
        del tokens[i]
    for i, word in inserts:
        tokens.insert(min(i, len(tokens)), word)
    compile_or_spec_error("".join(tokens), tmp_path)


@pytest.mark.parametrize("text", [
    "seed " + "[" * 5000 + "]" * 5000,  # nesting deeper than the recursive tree → AST transform
    "seed " + "f(" * 5000 + ")" * 5000,
    'experiment "\\x"\n',  # escapes that do not decode
    'experiment "\\N{no such name}"\n',
    "# a comment\rseed 1\rmodel m {\r}\r",  # '\r' line endings: one long comment to the parser
    "\ufeff" + QUICKSTART,  # byte-order mark
    QUICKSTART.replace("learning_rate = 0.1", "learning_rate = 1e400"),  # float overflow
    QUICKSTART.replace("dense   128", "dense   99999999999999999999999"),
], ids=["deep-list", "deep-call", "bad-escape-x", "bad-escape-N", "cr-only", "bom", "inf", "huge-int"])
def test_known_crashers(text, tmp_path):
    compile_or_spec_error(text, tmp_path)
