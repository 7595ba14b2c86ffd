"""`fedlang explain CODE`: every documented code explains; every documented fix really fixes."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from fedlang.cli import main
from fedlang.diagnostics import Source, SpecError
from fedlang.pipeline import compile_source
from fedlang.tooling.explain import ROOT, load, pointer

EXPLANATIONS = load()
FIXED = sorted(code for code, e in EXPLANATIONS.items() if e.fix is not None)
FIXTURES = ROOT / "tests" / "fixtures" / "invalid"


def test_every_documented_code_explains():
    assert len(EXPLANATIONS) >= 90
    runner = CliRunner()
    for code in EXPLANATIONS:
        result = runner.invoke(main, ["explain", code])
        assert result.exit_code == 0, (code, result.output)
        assert result.stdout.startswith(("error[" if code.startswith("E") else "warning[") + code + "]")


def test_most_codes_have_a_checked_fix():
    errors_with_fixtures = [c for c, e in EXPLANATIONS.items() if c.startswith("E") and e.fixtures]
    assert len(FIXED) >= 0.7 * len(errors_with_fixtures)


@pytest.mark.parametrize("code", FIXED)
def test_the_wrong_spec_fails_with_its_code_and_the_fix_checks(code):
    fix = EXPLANATIONS[code].fix
    path = FIXTURES / fix.fixture
    wrong = path.read_text(encoding="utf-8")
    with pytest.raises(SpecError) as failure:
        compile_source(Source(path.name, wrong), base_dir=FIXTURES)
    assert code in {d.code for d in failure.value.diagnostics}
    compile_source(Source(path.name, fix.apply(wrong)), base_dir=FIXTURES)  # raises if the fix does not check


def test_explain_shows_wrong_message_and_right():
    result = CliRunner().invoke(main, ["explain", "E812"])
    out = result.stdout
    assert "secure bounds(1.0, -1.0)" in out and "error[E812]: secure bounds need lower < upper" in out
    assert "-  secure bounds(1.0, -1.0)" in out and "+  secure bounds(-1.0, 1.0)" in out
    assert out.index("Wrong") < out.index("says:") < out.index("Right")


def test_unknown_code_is_bad_usage():
    result = CliRunner().invoke(main, ["explain", "E999"])
    assert result.exit_code == 2 and "no error code 'E999'" in result.stderr


def test_error_output_ends_with_the_pointer(tmp_path):
    spec = tmp_path / "bad.fed"
    spec.write_text((FIXTURES / "typo_layer.fed").read_text())
    result = CliRunner().invoke(main, ["check", str(spec)])
    assert result.exit_code == 1
    assert result.stderr.rstrip("\n").splitlines()[-1] == "For more about this error, run `fedlang explain E201`."
    assert pointer(["E201", "E208", "E201"]) == \
        "For more about an error, run `fedlang explain CODE` with one of: E201, E208."
