"""`fedlang run` and the program `fedlang emit` writes are the same experiment: the emitted program,
run as `python out.py --rounds N` where fedlang cannot be imported, prints the numbers `fedlang
run` records (to the 6 decimals it prints). And a run is a function of its spec: the same seed
gives the same numbers, another seed other numbers."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .support import (QUICKSTART_ROUNDS, REPO, SPECS, assert_no_worker_left, parse_printed_rows, read_jsonl,
                      run_fedlang, subprocess_env)

pytestmark = [pytest.mark.tff, pytest.mark.slow]

SYNTHETIC = SPECS / "synthetic_fedprox.fed"  # fedprox, uniform weighting, FedAdam, dropout
SYNTHETIC_ROUNDS = 4

# On PYTHONPATH, this sitecustomize makes every `fedlang` import fail. (The venv has fedlang
# installed in editable mode, through a meta-path finder, so cwd and PYTHONPATH alone would not
# keep it out; the blocker goes first in sys.meta_path and wins.)
BLOCKER = '''\
import os
import sys


class _NoFedlang:
    def find_spec(self, name, path=None, target=None):
        if name == "fedlang" or name.startswith("fedlang."):
            raise ModuleNotFoundError(f"No module named {name!r} (fedlang is blocked for this test)", name=name)
        return None


sys.meta_path.insert(0, _NoFedlang())
sys.path[:] = [p for p in sys.path if not os.path.isdir(os.path.join(p or os.getcwd(), "fedlang"))]
'''
BLOCKED_MESSAGE = "fedlang is blocked for this test"


@pytest.fixture(scope="module")
def no_fedlang_env(tmp_path_factory):
    blocker = tmp_path_factory.mktemp("no_fedlang")
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    return subprocess_env(PYTHONPATH=str(blocker))


def _python(args, env, cwd, timeout=240):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=timeout)


def test_the_blocked_environment_cannot_import_fedlang(no_fedlang_env, tmp_path):
    probe = ["-c", "import fedlang, sys; print(fedlang.__file__)"]
    assert _python(probe, subprocess_env(), tmp_path).returncode == 0  # the editable install works...
    blocked = _python(probe, no_fedlang_env, tmp_path)
    assert blocked.returncode != 0 and BLOCKED_MESSAGE in blocked.stderr  # ...and is blocked here
    lazy = _python(["-c", "import importlib; importlib.import_module('fedlang.lib.data')"], no_fedlang_env, tmp_path)
    assert lazy.returncode != 0 and BLOCKED_MESSAGE in lazy.stderr


def _emit_and_run_standalone(spec, rounds, env, work, timeout=240):
    """`fedlang emit SPEC -o work/program.py`, then `python program.py --rounds N` in `work`."""
    program = work / "program.py"
    emitted = run_fedlang("emit", spec, "-o", program, timeout=60)
    assert emitted.returncode == 0, emitted.stderr
    result = _python([program.name, "--rounds", str(rounds)], env, work, timeout=timeout)
    assert_no_worker_left()
    assert result.returncode == 0, result.stderr[-3000:]
    assert BLOCKED_MESSAGE not in result.stderr
    return program.read_text(), parse_printed_rows(result.stdout)


def _assert_printed_equals_recorded(printed, recorded):
    assert [int(p["round"]) for p in printed] == [r["round"] for r in recorded]
    for shown, row in zip(printed, recorded):
        shown = {k: v for k, v in shown.items() if k != "round"}
        metrics = {k for k in row if k.startswith(("train_", "eval_"))}
        assert metrics <= set(shown), f"round {row['round']}: {sorted(metrics - set(shown))} not printed"
        assert shown == {k: f"{row[k]:.6f}" for k in shown}, f"round {row['round']}"


def _numbers(rows):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "run"
    result = run_fedlang("run", SYNTHETIC, "--rounds", SYNTHETIC_ROUNDS, "--out", out)
    assert_no_worker_left()
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_quickstart_run_equals_emitted_program(quickstart_run, no_fedlang_env, tmp_path):
    spec, out, result = quickstart_run
    assert result.returncode == 0, result.stderr[-3000:]
    program, printed = _emit_and_run_standalone(spec, QUICKSTART_ROUNDS, no_fedlang_env, tmp_path)
    assert program == (out / "program.py").read_text()  # run executed exactly the emitted program
    _assert_printed_equals_recorded(printed, read_jsonl(out / "metrics.jsonl"))


def test_fedprox_run_equals_emitted_program(synthetic_run, no_fedlang_env, tmp_path):
    program, printed = _emit_and_run_standalone(SYNTHETIC, SYNTHETIC_ROUNDS, no_fedlang_env, tmp_path)
    assert "build_unweighted_fed_avg(" in program and "ProximalOptimizer(" in program
    assert program == (synthetic_run / "program.py").read_text()
    _assert_printed_equals_recorded(printed, read_jsonl(synthetic_run / "metrics.jsonl"))


def test_same_seed_gives_the_same_numbers(synthetic_run, tmp_path):
    again = run_fedlang("run", SYNTHETIC, "--rounds", SYNTHETIC_ROUNDS, "--out", tmp_path / "run")
    assert_no_worker_left()
    assert again.returncode == 0, again.stderr[-3000:]
    assert _numbers(read_jsonl(tmp_path / "run" / "metrics.jsonl")) == _numbers(read_jsonl(synthetic_run / "metrics.jsonl"))


def test_another_seed_gives_other_numbers(synthetic_run, tmp_path):
    text, n = re.subn(r"^seed \d+$", "seed 9", SYNTHETIC.read_text(), flags=re.M)
    assert n == 1 and "seed 8" in SYNTHETIC.read_text()
    spec = tmp_path / "seed9.fed"
    spec.write_text(text)
    other = run_fedlang("run", spec, "--rounds", SYNTHETIC_ROUNDS, "--out", tmp_path / "run")
    assert_no_worker_left()
    assert other.returncode == 0, other.stderr[-3000:]
    mine, theirs = read_jsonl(tmp_path / "run" / "metrics.jsonl"), read_jsonl(synthetic_run / "metrics.jsonl")
    assert len(mine) == len(theirs) == SYNTHETIC_ROUNDS
    for a, b in zip(mine, theirs):
        assert a["train_loss"] != b["train_loss"], a["round"]


def test_seeded_dp_run_equals_emitted_program(no_fedlang_env, tmp_path):
    """With `seeded_noise true` even the DP noise is a function of the spec: two processes agree."""
    spec = SPECS / "digits_dp_seeded.fed"
    result = run_fedlang("run", spec, "--out", tmp_path / "run")
    assert_no_worker_left()
    assert result.returncode == 0, result.stderr[-3000:]
    program, printed = _emit_and_run_standalone(spec, 3, no_fedlang_env, tmp_path)
    assert "SeededGaussianSumQuery(l2_norm_clip=0.5, stddev=NOISE_MULTIPLIER * 0.5, seed=SEED)" in program
    recorded = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    _assert_printed_equals_recorded(printed, recorded)
    assert all("epsilon" in row for row in recorded)


def test_sequence_example_run_equals_emitted_program(no_fedlang_env, tmp_path):
    """Integer token inputs (markov source, embedding, GRU): run and emitted program agree.
    (Tracing the GRU takes a while on a loaded machine: hence the longer timeouts.)"""
    spec = REPO / "examples" / "sequence_markov.fed"
    result = run_fedlang("run", spec, "--rounds", 2, "--out", tmp_path / "run", timeout=900)
    assert_no_worker_left()
    assert result.returncode == 0, result.stderr[-3000:]
    program, printed = _emit_and_run_standalone(spec, 2, no_fedlang_env, tmp_path, timeout=900)
    assert "tf.TensorSpec([None, 8], tf.int64)" in program and "markov_sequences(" in program
    assert program == (tmp_path / "run" / "program.py").read_text()
    recorded = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    _assert_printed_equals_recorded(printed, recorded)
    assert "eval_accuracy" in recorded[-1]


def test_simulated_conditions_run_equals_emitted_program(no_fedlang_env, tmp_path):
    """A simulation block (availability, dropout, deadline with partial work, FedProx stragglers)
    and a learning-rate schedule: the same conditions and numbers in run and in the emitted program."""
    spec = SPECS / "simulation_partial.fed"
    result = run_fedlang("run", spec, "--out", tmp_path / "run")
    assert_no_worker_left()
    assert result.returncode == 0, result.stderr[-3000:]
    program, printed = _emit_and_run_standalone(spec, 3, no_fedlang_env, tmp_path)
    assert program == (tmp_path / "run" / "program.py").read_text()
    recorded = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    _assert_printed_equals_recorded(printed, recorded)
    for shown, row in zip(printed, recorded):  # the conditions are printed too, and agree
        for key in ("available", "selected", "completed", "dropped", "straggling", "participation", "sim_seconds",
                    "client_lr"):
            assert shown[key] == f"{row[key]:.6f}", (row["round"], key)
    assert any(row["straggling"] for row in recorded)
