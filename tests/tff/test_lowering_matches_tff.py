"""The front end's static facts agree with what TFF actually builds, and every algorithm and
optimizer the language offers builds a TFF process that runs.

The front end computes parameter counts and TFF type strings without TensorFlow; here they are
compared with Keras' `count_params()` and with `str(process.next.type_signature)` of the real
process. The emitted programs are exec'd in this process on one module-scoped worker.
"""

from __future__ import annotations

import math
import re

import pytest

from .support import QUICKSTART, SPECS, compile_text, load_program

pytestmark = pytest.mark.tff

pytest.importorskip("tensorflow_federated")

TYPE_SPECS = {
    "quickstart-mlp": QUICKSTART,
    "cnn": SPECS / "digits_cnn.fed",
    "binary": SPECS / "breast_cancer_binary.fed",
}


def _train_metrics_type(signature: str) -> str:
    """The `train=<...>` metrics struct of a learning process' `next` type."""
    match = re.search(r"train=<([^<>]*)>", signature)
    assert match, signature
    return match.group(1)


@pytest.mark.parametrize("name", list(TYPE_SPECS))
def test_param_count_and_types_match_the_built_process(name, tff_worker):
    path = TYPE_SPECS[name]
    compiled = compile_text(path.read_text(), name=str(path))
    ns = load_program(compiled)
    model = compiled.checked.model

    keras_model = ns["build_keras_model"]()
    assert model.param_count == keras_model.count_params()
    assert [tuple(w.shape) for w in keras_model.trainable_weights] == [tuple(s) for s in model.weight_shapes]
    assert not keras_model.non_trainable_weights

    process = ns["build_process"]()
    signature = str(process.next.type_signature)
    plan = compiled.plan
    assert f"global_model_weights={plan.model_weights_type}" in signature
    assert f"client_data={plan.client_data_type}" in signature
    # The result of `next` carries the same weights type as its argument.
    assert signature.count(plan.model_weights_type) == 2

    # The metrics the front end promises (its round signature) are the ones TFF reports
    # (as a set here; their order is checked below).
    real = _train_metrics_type(signature).split(",")
    assert set(real) - {"num_examples=int64", "num_batches=int64"} == set(_promised_metrics(plan))


def _promised_metrics(plan) -> list[str]:
    return re.search(r"metrics=<([^<>]*)>@SERVER>\)$", plan.round_signature).group(1).split(",")


def test_round_signature_lists_metrics_in_tff_order(tff_worker):
    # [auc, accuracy, precision, recall]: TFF reports auc, accuracy, precision, recall, loss.
    path = TYPE_SPECS["binary"]
    compiled = compile_text(path.read_text(), name=str(path))
    signature = str(load_program(compiled)["build_process"]().next.type_signature)
    real = [m for m in _train_metrics_type(signature).split(",") if m.split("=")[0] not in ("num_examples", "num_batches")]
    assert _promised_metrics(compiled.plan) == real


VARIANT_SPEC = """\
experiment "variant-{name}"
seed 5
model m {{
  input [4]
  dense 8 relu
  dense 3 softmax
  loss sparse_categorical_crossentropy
  metrics [accuracy]
}}
data {{
  source sklearn.iris
  scale standard
  partition iid(clients = 6)
  test holdout(0.2)
  batch 8
}}
train {algorithm} {{
  rounds 1 clients_per_round 4
  {settings}
  execution per_client
}}
evaluate {{ every 1 }}
"""

# name: (algorithm, settings, builder in the emitted program, expected hparams, weighted)
VARIANTS = {
    "fedavg-weighted-sgd": (
        "fedavg", "weighting examples client_optimizer sgd(learning_rate = 0.1) "
                  "server_optimizer sgd(learning_rate = 1.0)",
        ["build_weighted_fed_avg(", "build_sgdm(learning_rate=0.1)", "build_sgdm(learning_rate=1.0)"],
        {"client_work": {"learning_rate": 0.1}, "finalizer": {"learning_rate": 1.0}}, True),
    "fedavg-uniform-clientadam-servermomentum": (
        "fedavg", "weighting uniform client_optimizer adam(learning_rate = 0.01) "
                  "server_optimizer sgd(learning_rate = 0.5, momentum = 0.9)",
        ["build_unweighted_fed_avg(", "build_adam(learning_rate=0.01", "build_sgdm(learning_rate=0.5, momentum=0.9)"],
        {"client_work": {"learning_rate": 0.01, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
         "finalizer": {"learning_rate": 0.5, "momentum": 0.9}}, False),
    "fedprox-weighted-serveradam": (
        "fedprox", "mu 0.1 weighting examples client_optimizer sgd(learning_rate = 0.05, momentum = 0.5) "
                   "server_optimizer adam(learning_rate = 0.02)",
        ["build_weighted_fed_avg(", "ProximalOptimizer(", "build_sgdm(learning_rate=0.05, momentum=0.5,)", "mu=0.1",
         "build_adam(learning_rate=0.02"],
        {"client_work": {"learning_rate": 0.05, "momentum": 0.5},
         "finalizer": {"learning_rate": 0.02, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-3}}, True),
    "fedprox-uniform-serveryogi": (
        "fedprox", "mu 0.01 weighting uniform server_optimizer yogi(learning_rate = 0.03)",
        ["build_unweighted_fed_avg(", "ProximalOptimizer(", "build_sgdm(learning_rate=0.02)", "mu=0.01",
         "build_yogi(learning_rate=0.03"],
        {"client_work": {"learning_rate": 0.02},
         "finalizer": {"learning_rate": 0.03, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-3}}, False),
    "fedsgd-serveradagrad": (
        "fedsgd", "server_optimizer adagrad(learning_rate = 0.1)",
        ["build_fed_sgd(", "build_adagrad(learning_rate=0.1"],
        {"client_work": {}, "finalizer": {"learning_rate": 0.1, "epsilon": 1e-7}}, True),
}


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return float(value)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_each_algorithm_and_optimizer_builds_and_runs_a_round(name, tff_worker):
    algorithm, settings, calls, hparams, weighted = VARIANTS[name]
    compiled = compile_text(VARIANT_SPEC.format(name=name, algorithm=algorithm, settings=settings))
    program = compiled.program()
    build = program[program.index("def build_process"):program.index("def train")]
    for call in calls:  # compared without whitespace: long calls are wrapped
        assert re.sub(r"\s", "", call) in re.sub(r"\s", "", build), f"{call!r} not in:\n{build}"

    ns = load_program(compiled)
    built = []

    def build_and_keep():  # train() looks build_process up in its namespace at call time
        built.append(original())
        return built[-1]

    original, ns["build_process"] = ns["build_process"], build_and_keep
    rows = []
    ns["train"](1, on_round=rows.append)
    [row] = rows
    assert row["round"] == 1 and row["clients"] == 4
    for key in ("train_loss", "train_accuracy", "eval_loss", "eval_accuracy"):
        assert math.isfinite(row[key]), row
    assert 0.0 <= row["eval_accuracy"] <= 1.0

    [process] = built
    actual = _plain(process.get_hparams(process.initialize()))
    for part, expected in hparams.items():
        assert actual[part] == pytest.approx(expected, rel=1e-6), (part, actual)
    signature = str(process.next.type_signature)
    aggregator_metrics = "mean_weight=<>" if weighted else "mean_count=<>"
    assert aggregator_metrics in signature
