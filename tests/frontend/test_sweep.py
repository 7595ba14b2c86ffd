"""Sweeps: cells from --set and --seeds, settings written into the spec, every cell checked
first, failed cells kept apart, finished cells skipped on a rerun, mean ± sd per setting.

The runs themselves are TFF (tests/tff/test_sweep.py runs a real two-cell sweep); here a
runner that writes the run directory's summary.json stands in for the TFF process, so the
bookkeeping is tested in milliseconds.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import click
import pytest

from fedlang.diagnostics import Source
from fedlang.parse import parse_source
from fedlang.pipeline import compile_source
from fedlang.tooling.sweep import Cell, cell_text, parse_sets, plan_cells, run_sweep, split_values

ROOT = Path(__file__).resolve().parents[2]
FEDPROX = ROOT / "examples" / "fedprox_synthetic.fed"


def test_values_split_at_top_level_commas_only():
    assert split_values("0,0.01,1") == ["0", "0.01", "1"]
    assert split_values("sgd(learning_rate = 0.1, momentum = 0.9),adam") == \
        ["sgd(learning_rate = 0.1, momentum = 0.9)", "adam"]
    with pytest.raises(click.UsageError):
        parse_sets(("mu=1",))
    with pytest.raises(click.UsageError):
        parse_sets(("nosuchblock.mu=1",))


def test_grid_and_seeds():
    cells = plan_cells(parse_sets(("train.mu=0,1", "train.local_epochs=1,2")), 7, 3)
    assert len(cells) == 12 and cells[0] == Cell((("train.mu", "0"), ("train.local_epochs", "1")), 7)
    assert {c.seed for c in cells} == {7, 8, 9}
    assert cells[0].name == "mu=0-local_epochs=1-seed=7"


def test_settings_are_replaced_or_added_and_mean_the_same_as_written():
    text = FEDPROX.read_text()
    cell = Cell((("train.mu", "1"), ("evaluate.every", "3"), ("data.shuffle", "10"),
                 ("train.weighting", "uniform")), 11)
    changed = compile_source(Source(str(FEDPROX), cell_text(text, cell)), FEDPROX.parent).checked
    assert changed.train.mu == 1 and changed.seed == 11 and changed.evaluate.every == 3
    assert changed.data.shuffle == 10 and changed.train.weighting == "uniform"
    # everything else as in the spec
    original = compile_source(Source(str(FEDPROX), text), FEDPROX.parent).checked
    assert changed.train.rounds == original.train.rounds and changed.model == original.model
    # comments and the rest of the text are untouched
    assert "# proximal term" in cell_text(text, cell)
    parse_source(Source("x.fed", cell_text("model m {\n}\ntrain fedavg { rounds 1 }\n",
                                           Cell((("train.local_epochs", "2"),), 0))))


def _fake_runner(results: dict[str, dict], calls: list[str]):
    """Writes the summary.json a run would; a cell mapped to None fails like a crashed run."""
    def run(spec: Path, base_dir: Path, run_dir: Path, rounds):
        calls.append(run_dir.name)
        run_dir.mkdir(parents=True, exist_ok=True)
        final = results[run_dir.name]
        if final is None:
            return 1
        (run_dir / "summary.json").write_text(json.dumps({"status": "completed", "final": final}))
        return 0
    return run


def test_sweep_bookkeeping(tmp_path, capsys):
    out = tmp_path / "sweep"
    accuracy = {"mu=0-seed=7": 0.5, "mu=0-seed=8": 0.7, "mu=1-seed=7": 0.6, "mu=1-seed=8": None}
    results = {name: (None if a is None else {"round": 60, "loss": 1 - a, "eval_accuracy": a})
               for name, a in accuracy.items()}
    calls: list[str] = []
    code = run_sweep(str(FEDPROX), ("train.mu=0,1",), 2, out_dir=str(out), runner=_fake_runner(results, calls))
    assert code == 1 and len(calls) == 4  # the failed cell did not stop the others
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [(r["setting"], r["n"], r["runs"]) for r in rows] == [("train.mu=0", "2", "2"), ("train.mu=1", "1", "2")]
    assert float(rows[0]["eval_accuracy_mean"]) == pytest.approx(0.6)
    assert float(rows[0]["eval_accuracy_sd"]) == pytest.approx(math.sqrt(0.02))  # sample sd of 0.5, 0.7
    assert rows[1]["eval_accuracy_sd"] == ""  # one run: no sd
    assert (out / "summary.png").exists()
    cells = list(csv.DictReader(open(out / "cells.csv")))
    assert [c["status"] for c in cells] == ["completed", "completed", "completed", "not run"]
    assert "0.6 ± 0.14" in capsys.readouterr().out

    # a rerun runs only the cell that did not complete
    results["mu=1-seed=8"] = {"round": 60, "loss": 0.2, "eval_accuracy": 0.8}
    calls.clear()
    assert run_sweep(str(FEDPROX), ("train.mu=0,1",), 2, out_dir=str(out),
                     runner=_fake_runner(results, calls)) == 0
    assert calls == ["mu=1-seed=8"]
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert rows[1]["n"] == "2" and float(rows[1]["eval_accuracy_mean"]) == pytest.approx(0.7)


def test_every_cell_is_checked_before_any_runs(tmp_path, capsys):
    calls: list[str] = []
    code = run_sweep(str(FEDPROX), ("train.mu=0.01,-1",), 1, out_dir=str(tmp_path / "s"),
                     runner=_fake_runner({}, calls))
    assert code == 1 and calls == []
    err = capsys.readouterr().err
    assert "cell mu=-1-seed=7" in err and "error[E206]" in err and "1 of 2 cells do not check" in err
