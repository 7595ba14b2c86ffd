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


def _plan_rows(output: str) -> dict[str, str]:
    rows = {}
    for line in output.splitlines()[1:]:
        label, _, text = line.strip().partition("  ")
        rows[label] = text.strip()
    return rows


def test_plan_reports_bytes_from_the_model_size(cli):
    """quickstart: 64·128 + 128 + 128·10 + 10 = 9,610 float32 parameters; 10 clients × 30 rounds."""
    result = cli("plan", QUICKSTART)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"plan for {QUICKSTART} — experiment 'digits-quickstart', fedavg")
    rows = _plan_rows(result.stdout)
    params = 64 * 128 + 128 + 128 * 10 + 10
    assert rows["model parameters"] == f"{params:,} ({4 * params / 1024:.1f} KiB as float32)"
    assert rows["clients per round"] == "10 of 50"
    assert rows["rounds"] == "30"
    assert rows["total over the run"] == (f"{4 * params * 10 * 30 / 2**20:.1f} MiB down, "
                                          f"{(4 * params + 4) * 10 * 30 / 2**20:.1f} MiB up")
    assert rows["privacy"].startswith("none")
    assert rows["warnings"] == "none"


def test_plan_reports_quantization_and_privacy(cli):
    compressed = _plan_rows(cli("plan", "examples/compressed_digits.fed").stdout)
    # 8 bits: each tensor above the threshold costs ceil(n·8/8) + 8 bytes instead of 4n.
    assert "with 8-bit quantization" in compressed["up per client per round"]
    assert "4.0x smaller" in compressed["up per client per round"]
    dp = _plan_rows(cli("plan", "examples/dp_secure_digits.fed").stdout)
    from fedlang.pipeline import compile_file

    p = compile_file("examples/dp_secure_digits.fed").checked.privacy
    assert dp["mechanism"].startswith(f"Gaussian, z = {p.noise_multiplier:g} (solved for the target)")
    assert dp["accounting"].endswith(f"q = {p.sampling_rate:.4g} (80/400)")
    assert dp[f"ε after {25} rounds"] == f"{p.epsilon:.4g} at δ = 1e-05"
    assert p.epsilon <= 10 < p.epsilon + 0.1  # solved: the smallest z whose ε meets the target
    assert dp["secure aggregation"].startswith("sum of values clipped to [-1, 1]")
