"""The train and evaluate passes: a known algorithm with options that make sense for it."""

from __future__ import annotations

from .. import ast
from ..checked import EvaluateConfig, TrainConfig
from ..diagnostics import Diagnostics, did_you_mean
from ..registry import ALGORITHMS, EVALUATE_SETTINGS, TRAIN_SETTINGS
from .settings import resolve_settings


def check_train(block: ast.TrainBlock, diags: Diagnostics) -> TrainConfig | None:
    before = len(diags.errors)
    algorithm = block.algorithm.name
    if algorithm not in ALGORITHMS:
        if algorithm.lower() == "fedavgm":
            hint = ("FedAvgM is fedavg with server momentum: `train fedavg { … }` with "
                    "`server_optimizer sgd(learning_rate = 1.0, momentum = 0.9)`")
        else:
            hint = (did_you_mean(algorithm, ALGORITHMS)
                    or f"algorithms: {', '.join(ALGORITHMS)} (FedAvgM is fedavg with server momentum)")
        diags.error("E201", f"unknown algorithm '{algorithm}'", block.algorithm.span, hint)
    s = resolve_settings("train", block.settings, TRAIN_SETTINGS, block.span, diags)

    if algorithm == "fedprox" and s["mu"] is None:
        diags.error("E209", "fedprox needs 'mu', the proximal strength", s.block_span,
                    "add e.g. `mu 0.01`")
    if algorithm != "fedprox" and s.given("mu"):
        diags.error("E601", f"'mu' is a FedProx option; {algorithm} has no proximal term", s.key_span("mu"),
                    "use `train fedprox { … }`, or remove mu")
    if algorithm == "fedsgd":
        for key in ("client_optimizer", "local_epochs"):
            if s.given(key):
                diags.error("E602", f"fedsgd takes one gradient per client per round: '{key}' does not apply",
                            s.key_span(key), "use fedavg for local training steps")
        if s.given("weighting") and s["weighting"] == "uniform":
            diags.error("E602", "fedsgd always weights gradients by example count", s.value_span("weighting"),
                        "remove `weighting uniform`, or use fedavg")
    if len(diags.errors) > before:
        return None
    return TrainConfig(
        algorithm=algorithm,
        rounds=s["rounds"],
        clients_per_round=s["clients_per_round"],  # None: all clients; filled in by check()
        local_epochs=s["local_epochs"],
        client_optimizer=s["client_optimizer"],
        server_optimizer=s["server_optimizer"],
        weighting=s["weighting"],
        mu=s["mu"],
        lines=(block.span.line, block.span.end_line),
        on_nonfinite=s["on_nonfinite"],
        execution=s["execution"],
    )


def check_evaluate(block: ast.EvaluateBlock, diags: Diagnostics) -> EvaluateConfig | None:
    before = len(diags.errors)
    s = resolve_settings("evaluate", block.settings, EVALUATE_SETTINGS, block.span, diags)
    if len(diags.errors) > before:
        return None
    return EvaluateConfig(every=s["every"], lines=(block.span.line, block.span.end_line), clients=s["clients"])
