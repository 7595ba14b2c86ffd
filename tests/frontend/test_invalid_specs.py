"""Golden tests for the messages of `fedlang check` on broken specs.

Every `tests/fixtures/invalid/<name>.fed` holds one mistake a user could make (a comment at
its top says which); `<name>.expected` holds the exact standard error of

    fedlang check tests/fixtures/invalid/<name>.fed

run from the repository root. The CLI runs in-process with click's CliRunner (click 8.2+
keeps stderr apart from stdout). Each fixture must exit with code 1, print nothing on stdout,
match its .expected file byte for byte, never show a Python traceback, and every diagnostic
line must read `file:line:col: error[E123]: message`.

To add a fixture, write the .fed file (and any data file under data/), then regenerate the
expected output and review the diff before committing:

    FEDLANG_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/frontend/test_invalid_specs.py

With FEDLANG_UPDATE_GOLDEN=1 the .expected files are (re)written from the current output;
the other assertions still run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fedlang.cli import main

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "invalid"
SPECS = sorted(FIXTURES.glob("*.fed"))
UPDATE = os.environ.get("FEDLANG_UPDATE_GOLDEN") == "1"

DIAGNOSTIC = re.compile(r"^tests/fixtures/invalid/[\w.-]+\.fed:\d+:\d+: (error|warning)\[[EW]\d+\]: ")
SUMMARY = re.compile(r"^\d+ errors? in tests/fixtures/invalid/[\w.-]+\.fed$")


def run_check(spec: Path):
    """`fedlang check tests/fixtures/invalid/<name>.fed`, in-process, from the repo root."""
    relative = spec.relative_to(ROOT).as_posix()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return CliRunner().invoke(main, ["check", relative])
    finally:
        os.chdir(cwd)


def test_there_are_fixtures():
    assert len(SPECS) >= 45
    missing = [s.name for s in SPECS if not s.with_suffix(".expected").exists() and not UPDATE]
    assert not missing, f"fixtures without .expected (run with FEDLANG_UPDATE_GOLDEN=1): {missing}"
    orphans = [e.name for e in FIXTURES.glob("*.expected") if not e.with_suffix(".fed").exists()]
    assert not orphans, f".expected files without a fixture: {orphans}"


@pytest.mark.parametrize("spec", SPECS, ids=[s.stem for s in SPECS])
def test_invalid_spec(spec: Path):
    result = run_check(spec)
    stderr = result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"check raised {result.exception!r}\n{stderr}"
    )
    assert "Traceback" not in result.output and "Traceback" not in stderr
    assert result.exit_code == 1, f"exit code {result.exit_code}\n{result.output}"
    assert result.stdout == "", f"a bad spec must print only to stderr:\n{result.stdout}"

    # the last line points at `fedlang explain` for the errors' codes; the .expected files hold
    # the diagnostics above it
    *lines, pointer = stderr.splitlines(keepends=True)
    codes = list(dict.fromkeys(re.findall(r"error\[(E\d{3})\]", stderr)))
    assert pointer.startswith("For more about ") and "`fedlang explain " in pointer, pointer
    assert all(code in pointer for code in codes), f"{pointer!r} does not name {codes}"
    stderr = "".join(lines)

    expected_path = spec.with_suffix(".expected")
    if UPDATE:
        expected_path.write_text(stderr)
    assert stderr == expected_path.read_text(), f"stderr of {spec.name} differs from {expected_path.name}"

    headlines = [line for line in stderr.splitlines() if line and not line.startswith(" ")]
    assert headlines, "no diagnostics printed"
    assert SUMMARY.match(headlines[-1]), f"last line is not the error count: {headlines[-1]!r}"
    for line in headlines[:-1]:
        assert DIAGNOSTIC.match(line), f"not a diagnostic line: {line!r}"


def test_fixtures_carry_a_comment():
    """Every text fixture says, in a comment at its top, which mistake it makes."""
    exempt = {"empty_file"}
    for spec in SPECS:
        if spec.stem in exempt or spec.stem.startswith("garbage_"):
            continue
        first = spec.read_text(encoding="utf-8").lstrip().splitlines()[0]
        assert first.startswith("# "), f"{spec.name} should start with a comment naming its mistake"


def test_check_never_imports_tensorflow():
    """`fedlang check` on every fixture must stay a pure front end (no TF, TFF or Keras)."""
    code = f"""
import json, os, sys
from click.testing import CliRunner
from fedlang.cli import main
os.chdir({str(ROOT)!r})
codes = set()
for spec in {json.dumps([s.relative_to(ROOT).as_posix() for s in SPECS])}:
    codes.add(CliRunner().invoke(main, ["check", spec]).exit_code)
codes.add(CliRunner().invoke(main, ["check", "examples/quickstart.fed"]).exit_code)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tensorflow_federated", "keras", "jax"))
print(json.dumps({{"codes": sorted(codes), "heavy": heavy}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [], f"fedlang check imported {report['heavy'][:5]}"
    assert report["codes"] == [0, 1]


def test_bad_usage_exits_2():
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        missing = CliRunner().invoke(main, ["check", "tests/fixtures/invalid/no_such_file.fed"])
        no_arg = CliRunner().invoke(main, ["check"])
    finally:
        os.chdir(cwd)
    assert missing.exit_code == 2 and "Traceback" not in missing.output
    assert no_arg.exit_code == 2


def test_every_code_is_documented():
    """docs/errors.md lists every code the sources can emit, and its fixture links resolve."""
    doc = (ROOT / "docs" / "errors.md").read_text()
    emitted = set()
    for path in (ROOT / "fedlang").rglob("*.py"):
        emitted.update(re.findall(r'"([EW]\d{3})"', path.read_text()))
    documented = set(re.findall(r"^\| ([EW]\d{3}) \|", doc, flags=re.M))
    assert emitted - documented == set(), f"codes missing from docs/errors.md: {sorted(emitted - documented)}"
    assert documented - emitted == set(), f"docs/errors.md lists codes nothing emits: {sorted(documented - emitted)}"
    for link in re.findall(r"\]\((\.\./tests/fixtures/invalid/[^)]+)\)", doc):
        assert (ROOT / "docs" / link).resolve().exists(), f"broken link in docs/errors.md: {link}"
    # Each fixture linked under a code really produces that code.
    for code, row in re.findall(r"^\| ([EW]\d{3}) \|(.*)$", doc, flags=re.M):
        for name in re.findall(r"tests/fixtures/invalid/([\w-]+)\.fed", row):
            expected = (FIXTURES / f"{name}.expected").read_text()
            assert f"[{code}]" in expected, f"docs/errors.md: {name} does not produce {code}"
