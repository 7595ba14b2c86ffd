"""`fedlang fmt`: canonical, idempotent, and never changes what a spec means.

Meaning is compared on the parsed AST and, for specs that check, on the CheckedSpec, both with
every source position dropped. The golden pair tests/fixtures/fmt/messy.fed → messy.formatted
shows the layout; regenerate it after a deliberate layout change with

    .venv/bin/python -m fedlang fmt - < tests/fixtures/fmt/messy.fed > tests/fixtures/fmt/messy.formatted
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from fedlang.check import check
from fedlang.cli import main
from fedlang.diagnostics import Source, SpecError
from fedlang.parse import parse_source, read_source
from fedlang.tooling.fmt import format_source, without_spans
from tests.frontend.test_fuzz_frontend import mutate_lines, mutate_tokens

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted(p for folder in ("examples", "tests") for p in (ROOT / folder).rglob("*.fed"))
MESSY = ROOT / "tests" / "fixtures" / "fmt" / "messy.fed"


def _parses(text: str) -> bool:
    try:
        parse_source(Source("x.fed", text))
    except SpecError:
        return False
    return True


def _assert_same_meaning(before: str, after: str, base_dir: Path, checked: bool = True) -> None:
    """Same AST; and (if `checked`) the same CheckedSpec, or the same error codes."""
    a, b = parse_source(Source("x.fed", before)), parse_source(Source("x.fed", after))
    assert without_spans(a) == without_spans(b)
    if not checked:
        return
    try:
        checked_before = check(a, Source("x.fed", before), base_dir)
    except SpecError as exc:  # an invalid spec: the same error codes, in the same order
        with pytest.raises(SpecError) as again:
            check(b, Source("x.fed", after), base_dir)
        assert [d.code for d in again.value.diagnostics] == [d.code for d in exc.diagnostics]
        return
    assert without_spans(check(b, Source("x.fed", after), base_dir)) == without_spans(checked_before)


def test_every_spec_in_the_repository_is_covered():
    names = {p.relative_to(ROOT).as_posix() for p in SPECS}
    assert "examples/quickstart.fed" in names and "examples/robust/median_attacked.fed" in names
    assert any(n.startswith("tests/fixtures/golden/") for n in names)


def _parsed_file(path: Path) -> bool:
    try:
        parse_source(read_source(path))
    except SpecError:
        return False
    return True


@pytest.mark.parametrize("path", [p for p in SPECS if _parsed_file(p)],
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_formatting_keeps_meaning_and_is_idempotent(path):
    source = read_source(path)
    once = format_source(source)
    assert format_source(Source(source.name, once)) == once
    # the invalid fixtures' checks are slow (budget searches) and only their parse matters here
    _assert_same_meaning(source.text, once, path.parent, checked="invalid" not in path.parts)
    # comments survive, in order
    assert [line.strip() for line in source.text.splitlines() if line.strip().startswith("#")] == \
           [line.strip() for line in once.splitlines() if line.strip().startswith("#")]


def test_messy_spec_golden():
    formatted = format_source(read_source(MESSY))
    assert formatted == MESSY.with_suffix(".formatted").read_text()
    _assert_same_meaning(MESSY.read_text(), formatted, MESSY.parent)


def test_canonical_layout_details():
    text = ('seed 1\nmodel m{\n input [ 8 ]\n        dense 4 relu  # a\n  dense 2  softmax # b\n'
            'loss sparse_categorical_crossentropy\n}\n\n\n\ndata {source sklearn.digits\n  batch 2 shuffle 3\n}\n'
            'evaluate {every   2}\n')
    assert format_source(Source("x.fed", text)) == (
        "seed 1\n\n"
        "model m {\n"
        "  input [8]\n"
        "  dense 4 relu     # a\n"
        "  dense 2 softmax  # b\n"
        "  loss  sparse_categorical_crossentropy\n"
        "}\n\n"
        "data {\n"
        "  source sklearn.digits\n"
        "  batch 2  shuffle 3\n"
        "}\n\n"
        "evaluate { every 2 }\n")


def test_strings_with_hashes_and_number_spellings_are_kept():
    text = 'experiment "a # not a comment"\nseed 1\ndata {\n source csv("x#.csv", label = "y")\n batch 1.0e1\n}\n'
    out = format_source(Source("x.fed", text))
    assert 'experiment "a # not a comment"' in out and 'csv("x#.csv", label = "y")' in out
    assert "batch  1.0e1" in out or "batch 1.0e1" in out


def test_multi_line_value_with_a_comment_inside_is_left_as_written():
    text = 'train fedavg {\n  rounds 3\n  client_optimizer sgd(\n      learning_rate = 0.1,   # tuned\n      momentum = 0.9)\n}\n'
    out = format_source(Source("x.fed", text))
    assert "  client_optimizer sgd(\n      learning_rate = 0.1,   # tuned\n      momentum = 0.9)\n" in out
    assert format_source(Source("x.fed", out)) == out


def test_multi_line_value_without_comments_is_joined():
    text = 'model m {\n  input [64]\n  metrics [\n    accuracy,\n    auc,\n  ]\n}\n'
    assert "  metrics [accuracy, auc]\n" in format_source(Source("x.fed", text))


def test_crlf_and_byte_order_mark():
    text = "\ufeffseed 1\r\nevaluate {  every 1 }\r\n"
    assert format_source(Source("x.fed", text)) == "seed 1\n\nevaluate { every 1 }\n"


@pytest.mark.parametrize("kind", ["tokens", "lines"])
def test_fuzzed_specs_that_parse_format_to_the_same_meaning(kind, tmp_path):
    make = {"tokens": mutate_tokens, "lines": mutate_lines}[kind]
    rng = random.Random(f"fedlang-fmt-{kind}")
    formatted = 0
    for _ in range(120):
        text = make(rng)
        if not _parses(text):
            continue
        once = format_source(Source("fuzz.fed", text))
        assert format_source(Source("fuzz.fed", once)) == once, text
        _assert_same_meaning(text, once, tmp_path)
        formatted += 1
    assert formatted > 20  # the corpus really exercised the formatter


def test_cli_check_prints_a_diff_and_exits_1(tmp_path):
    spec = tmp_path / "m.fed"
    spec.write_text(MESSY.read_text())
    result = CliRunner().invoke(main, ["fmt", "--check", str(spec)])
    assert result.exit_code == 1
    assert result.stdout.startswith("---") and "+++" in result.stdout and "+model mlp {" in result.stdout
    assert spec.read_text() == MESSY.read_text()  # --check changes nothing


def test_cli_rewrites_files_and_folders_then_check_passes(tmp_path):
    (tmp_path / "sub").mkdir()
    spec = tmp_path / "sub" / "m.fed"
    spec.write_text(MESSY.read_text())
    result = CliRunner().invoke(main, ["fmt", str(tmp_path)])
    assert result.exit_code == 0 and "formatted" in result.stdout
    assert spec.read_text() == MESSY.with_suffix(".formatted").read_text()
    assert CliRunner().invoke(main, ["fmt", "--check", str(spec)]).exit_code == 0


def test_cli_stdin_and_syntax_error(tmp_path):
    result = CliRunner().invoke(main, ["fmt", "-"], input="seed   3\n")
    assert result.exit_code == 0 and result.stdout == "seed 3\n"
    bad = tmp_path / "bad.fed"
    bad.write_text("model m {\n  dense 10\n")
    result = CliRunner().invoke(main, ["fmt", str(bad)])
    assert result.exit_code == 1 and "error[E110]" in result.stderr
    assert bad.read_text() == "model m {\n  dense 10\n"


def test_every_block_written_on_one_line_formats():
    """A one-line `simulation { every 10 }` was an internal formatter error (exit 3; found by
    the fuzzer on a mutant of examples/stragglers/fedprox_mu0_90.fed): fmt knew its blocks
    from a hand-written list that missed `simulation`. Every block keyword of the registry."""
    from fedlang.registry import BLOCK_BY_KEYWORD
    heads = {"model": "model m", "data": "data d", "train": "train fedavg", "aggregate":
             "aggregate a(update: float32[*] @CLIENTS) -> float32[*] @SERVER"}
    bodies = {"model": "input [3]", "aggregate": "return mean(update)", "round": "w @CLIENTS = broadcast(model)",
              "monitor": "checkpoint every 5"}
    blocks = [k for k, b in BLOCK_BY_KEYWORD.items() if not b.line]
    assert {"simulation", "monitor", "round", "aggregate"} <= set(blocks)
    for keyword in blocks:
        text = f"seed 1\n{heads.get(keyword, keyword)} {{ {bodies.get(keyword, 'every 10')} }}\n"
        formatted = format_source(Source("b.fed", text))
        assert without_spans(parse_source(Source("b.fed", formatted))) == without_spans(parse_source(Source("b.fed", text)))
        assert format_source(Source("b.fed", formatted)) == formatted
