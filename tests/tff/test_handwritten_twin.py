"""A hand-written TFF program (tests/tff/handwritten/digits_fedavg.py, in the style of TFF's image
classification tutorial) and its fedlang spec (digits_fedavg.fed) give the same numbers.

The hand-written program shares no code with fedlang: it builds its own data pipeline (dict
elements, [n, 1] labels), uses TFF's federated evaluation where fedlang uses Keras' evaluate,
and follows only fedlang's documented seeding conventions. Train metrics must agree exactly;
eval metrics to ~1e-6 (federated evaluation averages per batch, Keras in one batch).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from .support import compile_text, load_program

pytestmark = [pytest.mark.tff, pytest.mark.slow]

pytest.importorskip("tensorflow_federated")

HERE = Path(__file__).resolve().parent / "handwritten"
ROUNDS = 4


def _import_handwritten():
    spec = importlib.util.spec_from_file_location("digits_fedavg_handwritten", HERE / "digits_fedavg.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_handwritten_program_does_not_use_fedlang():
    tree = ast.parse((HERE / "digits_fedavg.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported == {"argparse", "collections", "numpy", "tensorflow", "tensorflow_federated", "sklearn"}


def test_spec_declares_the_handwritten_experiment():
    twin = _import_handwritten()
    checked = compile_text((HERE / "digits_fedavg.fed").read_text(), name="digits_fedavg.fed").checked
    assert checked.seed == twin.SEED
    assert checked.data.num_clients == twin.NUM_CLIENTS
    assert checked.data.batch == twin.BATCH_SIZE and checked.data.shuffle == twin.SHUFFLE_BUFFER
    assert checked.train.clients_per_round == twin.CLIENTS_PER_ROUND
    assert checked.train.local_epochs == twin.NUM_EPOCHS
    assert checked.train.rounds == twin.NUM_ROUNDS and checked.evaluate.every == twin.EVAL_EVERY


def test_handwritten_and_fedlang_give_the_same_numbers(tff_worker):
    twin = _import_handwritten()
    handwritten = twin.train(ROUNDS, report=lambda line: None)

    namespace = load_program(compile_text((HERE / "digits_fedavg.fed").read_text(), name="digits_fedavg.fed"))
    fedlang_rows = []
    namespace["train"](ROUNDS, on_round=fedlang_rows.append)

    assert [r["round"] for r in handwritten] == [r["round"] for r in fedlang_rows] == list(range(1, ROUNDS + 1))
    for mine, theirs in zip(handwritten, fedlang_rows):
        assert set(mine) - {"round"} == {k for k in theirs if k.startswith(("train_", "eval_"))}
        assert mine["train_loss"] == theirs["train_loss"], mine["round"]
        assert mine["train_accuracy"] == theirs["train_accuracy"], mine["round"]
        if "eval_loss" in mine:
            assert mine["eval_loss"] == pytest.approx(theirs["eval_loss"], abs=1e-6), mine["round"]
            assert mine["eval_accuracy"] == pytest.approx(theirs["eval_accuracy"], abs=1e-6), mine["round"]
    # It learned something (so equal numbers are not equal non-learning).
    assert handwritten[-1]["train_loss"] < handwritten[0]["train_loss"]
    assert handwritten[-1]["eval_accuracy"] > 0.3
