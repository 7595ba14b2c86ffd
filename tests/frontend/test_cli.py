"""The `fedlang` command in-process (click's CliRunner) and as a real process."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

from fedlang import __version__
from fedlang.cli import main

QUICKSTART = "examples/quickstart.fed"


@pytest.fixture
def cli(in_repo):
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args))


def test_check_summarises_a_valid_spec(cli):
    result = cli("check", QUICKSTART)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith(f"{QUICKSTART}: ok — experiment 'digits-quickstart', seed 42")
    assert "9,610 parameters" in out  # 64*128+128 + 128*10+10
    assert "50 (dirichlet(" in out
    assert "1,797 examples (1,438 train / 359 test)" in out
    assert "{<float32[?,64],int64[?]>*}@CLIENTS" in out
    assert "<trainable=<float32[64,128],float32[128],float32[128,10],float32[10]>,non_trainable=<>>@SERVER" in out


def test_check_types_lists_every_layer(cli):
    result = cli("check", "--types", QUICKSTART)
    assert result.exit_code == 0
    assert "dense: [64] -> [128], 8,320 parameters" in result.stdout
    assert "dropout: [128] -> [128], 0 parameters" in result.stdout


def test_bad_spec_exits_1_with_positioned_error(cli, tmp_path):
    spec = tmp_path / "bad.fed"
    spec.write_text(open(QUICKSTART).read().replace("dense   128 relu", "dence   128 relu"))
    result = cli("check", str(spec))
    assert result.exit_code == 1
    assert f"{spec}:8:3: error[E201]: unknown layer 'dence'" in result.stderr
    assert "hint: did you mean 'dense'?" in result.stderr
    assert "Traceback" not in result.output


def test_several_errors_are_reported_together(cli, tmp_path):
    text = open(QUICKSTART).read()
    text = text.replace("dropout 0.2", "dropout 1.5").replace("rounds 30", "rounds 0")
    spec = tmp_path / "two.fed"
    spec.write_text(text)
    result = cli("check", str(spec))
    assert result.exit_code == 1
    assert "'rate' must be in [0, 1); got 1.5" in result.stderr
    assert "'rounds' must be >= 1; got 0" in result.stderr
    assert "2 errors in" in result.stderr


@pytest.mark.parametrize("args", [["check"], ["check", "missing.fed"], ["frobnicate"],
                                  ["run", QUICKSTART, "--rounds", "0"]])
def test_usage_errors_exit_2(cli, args):
    result = cli(*args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_emit_to_stdout_and_file(cli, tmp_path):
    printed = cli("emit", QUICKSTART)
    assert printed.exit_code == 0
    assert printed.stdout.startswith("#!/usr/bin/env python3")
    out = tmp_path / "program.py"
    written = cli("emit", QUICKSTART, "-o", str(out))
    assert written.exit_code == 0
    assert out.read_text() == printed.stdout
    assert f"wrote {out}" in written.stderr
    compile(out.read_text(), str(out), "exec")


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0 and __version__ in result.stdout


def test_python_dash_m_and_no_tensorflow_on_the_front_end(in_repo):
    """`python -m fedlang check` works and never imports TensorFlow (it must answer fast)."""
    code = ("import sys, runpy; sys.argv = ['fedlang', 'check', %r]\n"
            "try:\n    runpy.run_module('fedlang', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_federated')]\n"
            "print('TF-MODULES', bad)") % QUICKSTART
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "digits-quickstart" in out.stdout
    assert "TF-MODULES []" in out.stdout
