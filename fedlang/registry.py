"""Everything a spec may name: blocks, their settings, layers, sources, partitions, optimizers.

The single source of truth for the checker (what is valid), the lowering (what it becomes) and
docs/language.md (what is documented). Layers, sources, partitions, optimizers and aggregators
are definition objects with all their hooks in fedlang/constructs/; top-level blocks are the
`BLOCK_DEFS` table below (keyword, AST node, settings, check pass, config type, lowering, docs
section), from which the parser's keyword list, the structure pass and `home_of` derive.
`tests/frontend/test_registry_complete.py` checks every hook exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ast as _ast
from . import checked as _checked
from .constructs.layers import ACTIVATIONS, LAYERS, PADDINGS  # noqa: F401  (re-exported)
from .constructs.partitions import MAX_CLIENTS, PARTITIONS  # noqa: F401  (re-exported)
from .constructs.sources import EMNIST_FACTS, SKLEARN_SETS, SOURCES  # noqa: F401  (re-exported)
from .constructs.training import (  # noqa: F401  (re-exported)
    CLIENT_OPTIMIZERS, GATHERING_AGGREGATORS, ROBUST_AGGREGATORS, SERVER_OPTIMIZERS)
from .constructs.training import _beta1, _beta2, _momentum  # shared options of the fine-tuning optimizers
from .forms import REQUIRED, Form, Param  # noqa: F401  (re-exported)
from .forms import forms as _forms


# ---------------------------------------------------------------- model

# Layers: fedlang/constructs/layers.py (one LayerDef each, with its shape rule and Keras call).

LOSSES = _forms(
    Form("sparse_categorical_crossentropy", doc="integer class labels; softmax (or linear = logits) output"),
    Form("binary_crossentropy", doc="two classes; one sigmoid (or linear = logit) output unit"),
)

METRICS = ("accuracy", "auc", "precision", "recall")
BINARY_ONLY_METRICS = ("auc", "precision", "recall")


# ---------------------------------------------------------------- data


# Sources: fedlang/constructs/sources.py (one SourceDef each, with its facts, replay and loader).

# Partitions: fedlang/constructs/partitions.py (one PartitionDef each, with its split call and rule).

TESTS = _forms(
    Form("holdout", (Param("fraction", "float", low=0, high=1, low_open=True, high_open=True,
                           doc="share of all examples held out for testing, e.g. 0.2"),),
         doc="a random fraction of all examples, held out before partitioning",
         example="test holdout(0.2)"),
    Form("per_client", (Param("fraction", "float", low=0, high=1, low_open=True, high_open=True,
                              doc="share of each client's examples it keeps as its own test set, e.g. 0.2"),
                        Param("holdout", "float", default=0.0, low=0, high=1, high_open=True,
                              doc="share of all examples also held out centrally, before partitioning (0: none)")),
         doc="each client keeps a random fraction of its own examples for testing (federated evaluation, "
             "personalization); optionally beside a central hold-out",
         example="test per_client(0.2)"),
    Form("split", (), doc="the source's own test split (emnist)", example="test split"),
    Form("none", (), doc="no test set (no evaluation)", example="test none"),
)

DATA_SETTINGS = (
    Param("source", "form", forms=SOURCES, doc="where the examples come from"),
    Param("partition", "form", default=None, forms=PARTITIONS,
          doc="how examples are split into clients (default: natural for sources with client ids)"),
    Param("test", "form", default=("none", {}), forms=TESTS, doc="held-out evaluation data"),
    Param("scale", "scale", default=None, doc="minmax, standard (fitted on training data) or a factor"),
    Param("reshape", "shape", default=None, doc="reshape each example, e.g. [8, 8, 1]"),
    Param("batch", "int", default=32, low=1, high=1_000_000, doc="local batch size"),
    Param("shuffle", "int", default=0, low=0, high=100_000_000, doc="shuffle buffer (0 = no shuffling)"),
)


# ---------------------------------------------------------------- train

# A learning rate is a number or a schedule over rounds (fedlang/lib/schedules.py).
SCHEDULES = _forms(
    Form("exponential_decay", (Param("initial", "float", low=0, low_open=True, doc="rate in round 1"),
                               Param("decay_rounds", "int", low=1, doc="rounds per factor of `rate`"),
                               Param("rate", "float", low=0, high=1, low_open=True, doc="decay factor"),
                               Param("staircase", "bool", default=False, doc="decay in whole steps")),
         doc="initial × rate^((round − 1) / decay_rounds), Keras' ExponentialDecay over rounds",
         example="learning_rate = exponential_decay(0.01, 10, 0.96)"),
    Form("warmup", (Param("target", "float", low=0, low_open=True, doc="rate after the warm-up"),
                    Param("rounds", "int", low=1, doc="rounds of warm-up"),
                    Param("start", "float", default=0.0, low=0, doc="rate in round 1")),
         doc="linear warm-up from start to target over the first rounds", example="learning_rate = warmup(0.1, 5)"),
    Form("cosine", (Param("initial", "float", low=0, low_open=True), Param("rounds", "int", low=1),
                    Param("minimum", "float", default=0.0, low=0)),
         doc="cosine decay from initial to minimum over `rounds` rounds", example="learning_rate = cosine(0.1, 50)"),
    Form("step", (Param("initial", "float", low=0, low_open=True), Param("every", "int", low=1),
                  Param("factor", "float", default=0.1, low=0, high=1, low_open=True)),
         doc="multiplied by factor every `every` rounds", example="learning_rate = step(0.1, every = 20, factor = 0.5)"),
)

# Optimizers: fedlang/constructs/training.py (one OptimizerDef each, with its TFF builder call).

ALGORITHMS = {
    "fedavg": "Federated Averaging (McMahan et al. 2017)",
    "fedprox": "FedProx: FedAvg with a proximal term mu/2·||w − w_global||² (Li et al. 2020)",
    "fedsgd": "FedSGD: one full-batch gradient per client per round",
}

WEIGHTINGS = ("examples", "uniform")
EXECUTIONS = ("auto", "fused", "per_client")

TRAIN_SETTINGS = (
    Param("rounds", "int", low=1, doc="number of federated rounds"),
    Param("clients_per_round", "int", default=None, low=1,
          doc="clients sampled uniformly without replacement each round (default: all)"),
    Param("local_epochs", "int", default=1, low=1, high=10_000, doc="passes over local data per round"),
    Param("client_optimizer", "form", default=("sgd", {"learning_rate": 0.02}), forms=CLIENT_OPTIMIZERS,
          doc="optimizer for local training"),
    Param("server_optimizer", "form", default=("sgd", {"learning_rate": 1.0}), forms=SERVER_OPTIMIZERS,
          doc="optimizer applied to the aggregated update"),
    Param("weighting", "name", default="examples", choices=WEIGHTINGS,
          doc="examples: weight client updates by example count; uniform: plain mean"),
    Param("mu", "float", default=None, low=0, doc="FedProx proximal strength (fedprox only)"),
    Param("on_nonfinite", "name", default="stop", choices=("stop", "skip"),
          doc="a client whose local training yields NaN/inf: stop before applying the round, or skip its update"),
    Param("execution", "name", default="auto", choices=EXECUTIONS,
          doc="auto: the fused path when the spec allows it; fused: require it; per_client: one TFF client "
              "computation per client (fedlang/execution.py)"),
)

EVALUATE_SETTINGS = (
    Param("every", "int", default=1, low=1, doc="evaluate on the test set every k rounds (and after the last)"),
    Param("clients", "int", default=None, low=1, high=MAX_CLIENTS,
          doc="federated evaluation (test per_client): a seeded sample of this many clients each time (default: all)"),
)

# ---------------------------------------------------------------- personalization
# (fedlang/check/personalize.py checks it; fedlang/lib/personal.py runs it inside TFF's
# personalization evaluation)

FINETUNE_OPTIMIZERS = _forms(
    Form("sgd", (Param("learning_rate", "float", low=0, low_open=True, doc="step size, e.g. 0.001"), _momentum),
         doc="SGD, optionally with momentum", example="optimizer sgd(learning_rate = 0.001)"),
    Form("adam", (Param("learning_rate", "float", default=0.001, low=0, low_open=True, doc="step size"),
                  _beta1, _beta2, Param("epsilon", "float", default=1e-7, low=0, low_open=True)),
         doc="Adam", example="optimizer adam(learning_rate = 0.001)"),
)

PERSONALIZE_SETTINGS = (
    Param("epochs", "int", default=5, low=1, high=10_000, doc="local fine-tuning epochs over the client's training data"),
    Param("optimizer", "form", default=("sgd", {"learning_rate": 0.001}), forms=FINETUNE_OPTIMIZERS,
          doc="optimizer of the local fine-tuning (the seed's SGD(1e-3) by default)"),
    Param("batch", "int", default=None, low=1, high=1_000_000, doc="fine-tuning batch size (default: the data's batch)"),
    Param("every", "int", default=None, low=1,
          doc="also fine-tune at the federated evaluations of every k-th round (default: only after the last round)"),
)

# ---------------------------------------------------------------- privacy and aggregation

CLIPS = _forms(
    Form("adaptive", (
        Param("quantile", "float", default=0.5, low=0, high=1, doc="target fraction of unclipped updates"),
        Param("learning_rate", "float", default=0.2, low=0, low_open=True, doc="geometric step of the clip"),
        Param("initial", "float", default=0.1, low=0, low_open=True, doc="clip norm in the first round")),
        doc="adaptive clipping (Andrew et al. 2021): the clip norm tracks a quantile of update norms",
        example="clip adaptive(quantile = 0.5, initial = 0.1)"),
)

ACCOUNTANTS = ("rdp", "pld")
BUDGET_POLICIES = ("refuse", "stop", "warn")
NOISE_PLACEMENTS = ("server", "clients")

PRIVACY_SETTINGS = (
    Param("noise", "noise", doc="Gaussian noise multiplier z (noise std / clip), or auto: the smallest z "
                                "that meets the epsilon target over the declared rounds"),
    Param("clip", "clip", doc="L2 norm bound of each client update: a number, or adaptive(…)"),
    Param("epsilon", "float", default=None, low=0, low_open=True, doc="privacy target ε (user-level)"),
    Param("delta", "float", default=1e-5, low=0, high=1, low_open=True, high_open=True, doc="δ of (ε, δ)-DP"),
    Param("population", "int", default=None, low=1,
          doc="clients that could be sampled (sampling rate = clients_per_round / population); "
              "default: the number of clients"),
    Param("accountant", "name", default="rdp", choices=ACCOUNTANTS,
          doc="rdp (Rényi DP, dp-accounting's default orders) or pld (privacy loss distributions)"),
    Param("on_exceed", "name", default="refuse", choices=BUDGET_POLICIES,
          doc="when ε would pass the target: refuse to start, stop at the last round within budget, or warn"),
    Param("noise_at", "name", default="server", choices=NOISE_PLACEMENTS,
          doc="server: noise added to the (secure) sum, central DP; clients: distributed DP"),
    Param("seeded_noise", "bool", default=False,
          doc="draw the noise from the spec's seed, so runs repeat exactly (simulation only: "
              "whoever knows the seed can subtract the noise); needs a fixed clip"),
)

SECURE_FORMS = _forms(
    Form("bounds", (Param("lower", "float", doc="smallest value a coordinate may take"),
                    Param("upper", "float", doc="largest value a coordinate may take")),
         doc="secure summation of values clipped to [lower, upper] (TFF SecureSumFactory)",
         example="secure bounds(-1.0, 1.0)"),
)

COMPRESSIONS = _forms(
    Form("quantize", (Param("bits", "int", low=1, high=16, doc="bits per value sent"),
                      Param("threshold", "int", default=0, low=0,
                            doc="tensors with at most this many values are sent uncompressed")),
         doc="uniform stochastic quantization of client updates (TFF EncodedSumFactory)",
         example="compress quantize(bits = 8)"),
    Form("topk", (Param("fraction", "float", low=0, high=1, low_open=True,
                        doc="share of each tensor's entries sent: those of largest magnitude"),
                  Param("threshold", "int", default=0, low=0,
                        doc="tensors with at most this many values are sent uncompressed")),
         doc="top-k sparsification of client updates: values and int32 indices (TFF EncodedSumFactory with a "
             "top-k tensor-encoding stage)", example="compress topk(fraction = 0.1)"),
)

# Library aggregators: fedlang/constructs/training.py (one AggregatorDef each, with its lib factory).

AGGREGATION_SETTINGS = (
    Param("secure", "form", default=None, forms=SECURE_FORMS, doc="secure aggregation with declared bounds"),
    Param("compress", "form", default=None, forms=COMPRESSIONS, doc="compress client updates"),
    Param("aggregator", "form", default=None, forms=ROBUST_AGGREGATORS,
          doc="a robust aggregator from the library, or the name of an `aggregate` block"),
)

ATTACK_SETTINGS = (
    Param("clients", "int", low=1, doc="attacking clients (client ids 0…k−1); they take part in every round"),
    Param("scale", "float", default=100.0, doc="each attacker's model update is multiplied by this"),
)

# ---------------------------------------------------------------- simulated client conditions
# (fedlang/check/simulation.py checks them; fedlang/lib/simulation.py draws them each round)

AVAILABILITY = _forms(
    Form("always", (), doc="every client is available in every round (the default)", example="available always"),
    Form("probability", (Param("p", "float", low=0, high=1, low_open=True, doc="chance of being available"),),
         doc="each client is available with probability p in each round; a bare number means this",
         example="available 0.3"),
    Form("daily", (Param("mean", "float", low=0, high=1, doc="average availability"),
                   Param("amplitude", "float", default=0.2, low=0, high=1, doc="swing over the day"),
                   Param("period", "int", default=24, low=1, doc="rounds per day")),
         doc="a daily sinusoid over rounds, each client with its own phase (time zone)",
         example="available daily(mean = 0.3, amplitude = 0.2, period = 24)"),
    Form("trace", (Param("path", "str", doc="CSV with columns client,round; relative to the spec's folder"),),
         doc="the clients listed for each round (FedScale's availability traces, in rounds); repeats "
             "after its last round", example='available trace("data/availability.csv")'),
)

DISTRIBUTIONS = _forms(
    Form("constant", (Param("value", "float", low=0, low_open=True),),
         doc="the same for every device; a bare number means this", example="speed 0.01"),
    Form("lognormal", (Param("median", "float", low=0, low_open=True, doc="the median device"),
                       Param("sigma", "float", default=0.5, low=0, doc="spread (of the log)")),
         doc="log-normal across devices", example="speed lognormal(median = 0.01, sigma = 0.8)"),
    Form("uniform", (Param("low", "float", low=0, low_open=True), Param("high", "float", low=0, low_open=True)),
         doc="uniform across devices", example="bandwidth uniform(1, 20)"),
)

STRAGGLER_POLICIES = ("drop", "partial")

SIMULATION_SETTINGS = (
    Param("available", "form", default=("always", {}), forms=AVAILABILITY,
          doc="which clients can be selected in a round: a probability, daily(…), trace(…) or always"),
    Param("over_select", "float", default=1.0, low=1, high=10,
          doc="select ceil(f × clients_per_round) available clients, keep the first clients_per_round to finish"),
    Param("min_clients", "int", default=1, low=1,
          doc="a round with fewer completed clients is abandoned: counted, model unchanged"),
    Param("dropout", "float", default=0.0, low=0, high=1, high_open=True,
          doc="chance that a selected client fails and sends nothing"),
    Param("speed", "form", default=None, forms=DISTRIBUTIONS,
          doc="seconds per training example of each device (its own, in every round)"),
    Param("bandwidth", "form", default=None, forms=DISTRIBUTIONS,
          doc="Mbit/s of each device, for the model down and the update up"),
    Param("deadline", "float", default=None, low=0, low_open=True,
          doc="seconds; clients that would finish later are stragglers"),
    Param("stragglers", "name", default="drop", choices=STRAGGLER_POLICIES,
          doc="drop: their work is lost (FedAvg); partial: the local steps done by the deadline count (FedProx)"),
    Param("straggler_fraction", "float", default=0.0, low=0, high=1,
          doc="FedProx's systems heterogeneity: this share of the selected clients run 1..E epochs (uniform)"),
    Param("max_steps", "int", default=None, low=1, doc="at most this many local steps (batches) per round"),
    Param("full_epochs_at", "int", default=None, low=1,
          doc="clients with fewer examples run proportionally fewer local epochs (at least one)"),
)

# ---------------------------------------------------------------- where the rounds run
# (fedlang/check/runtime.py; fedlang/lib/tff_worker.py starts or connects the workers)

RUNTIME_SETTINGS = (
    Param("workers", "int", default=1, low=1, high=64,
          doc="local TFF worker_binary processes that share each round's clients"),
    Param("remote", "addresses", default=(),
          doc='running TFF workers on other machines, "HOST:PORT" each (started there with `fedlang worker '
              '--port PORT`); they share each round\'s clients'),
    Param("timeout", "float", default=600.0, low=1, high=86_400,
          doc="seconds a worker may take to answer one call before the run fails naming it"),
)

HEADER_SEED = Param("seed", "int", low=0, high=2**31 - 1, doc="seeds data, partition, sampling and weights")


# ---------------------------------------------------------------- top-level blocks


@dataclass(frozen=True)
class BlockDef:
    """A top-level construct: its keyword and every hook the compiler has for it."""

    keyword: str
    node: type  # the AST node the parser builds for it (fedlang/ast.py)
    check: str  # its check pass, "module:function" in fedlang.check (looked up lazily: check imports this)
    config: type | None  # the checked type it becomes (fedlang/checked.py); None for a plain value
    docs: str  # heading of its section in docs/language.md
    settings: tuple[Param, ...] | None = None  # for blocks written as `key value` settings
    line: bool = False  # a top-level line (`experiment "…"`, `seed 42`), not a block
    required: bool = False
    many: bool = False  # may be written any number of times (named aggregate blocks)
    example: str = ""
    lowering: str = ""  # the function of fedlang/lower.py that turns its checked form into Plan fields

    def lowering_hook(self):
        """The lowering function (imported on first use: lowering imports this module)."""
        import importlib

        return getattr(importlib.import_module("fedlang.lower"), self.lowering)

    def check_pass(self):
        """The check function (imported on first use)."""
        import importlib

        module, _, function = self.check.partition(":")
        return getattr(importlib.import_module(f"fedlang.check.{module}" if module else "fedlang.check"), function)


BLOCK_DEFS: tuple[BlockDef, ...] = (
    BlockDef("experiment", _ast.Experiment, "values:resolve", None, "experiment and seed", line=True,
             lowering="_constants"),
    BlockDef("seed", _ast.Seed, "values:resolve", None, "experiment and seed", line=True, lowering="_constants"),
    BlockDef("model", _ast.ModelBlock, "model:check_model", _checked.ModelConfig, "The model block", required=True,
             example="model mlp {\n  input [64]\n  dense 10 softmax\n  loss sparse_categorical_crossentropy\n}",
             lowering="_model_layers"),
    BlockDef("data", _ast.DataBlock, "data:check_data", _checked.DataConfig, "The data block", DATA_SETTINGS,
             required=True, example="data digits {\n  source sklearn.digits\n  partition iid(clients = 10)\n}",
             lowering="_data_steps"),
    BlockDef("train", _ast.TrainBlock, "train:check_train", _checked.TrainConfig, "The train block", TRAIN_SETTINGS,
             required=True, example="train fedavg {\n  rounds 10\n}", lowering="_process"),
    BlockDef("evaluate", _ast.EvaluateBlock, "train:check_evaluate", _checked.EvaluateConfig, "The evaluate block",
             EVALUATE_SETTINGS, lowering="_constants"),
    BlockDef("privacy", _ast.PrivacyBlock, "privacy:check_privacy", _checked.PrivacyConfig, "The privacy block",
             PRIVACY_SETTINGS, lowering="_aggregator"),
    BlockDef("aggregation", _ast.AggregationBlock, "privacy:check_aggregation", _checked.AggregationConfig,
             "The aggregation block", AGGREGATION_SETTINGS, lowering="_aggregator"),
    BlockDef("attack", _ast.AttackBlock, ":check_attack", _checked.AttackConfig,
             "Simulated attackers: the attack block", ATTACK_SETTINGS, lowering="_process"),
    BlockDef("aggregate", _ast.AggregateBlock, "steps:check_aggregates", _checked.AggregateConfig,
             "Aggregate blocks: Federated Core steps", many=True, lowering="aggregate_code"),
    BlockDef("round", _ast.RoundBlock, "steps:check_round", _checked.AggregateConfig,
             "A whole round: the round block", lowering="aggregate_code"),
    BlockDef("simulation", _ast.SimulationBlock, "simulation:check_simulation", _checked.SimulationConfig,
             "The simulation block: client conditions", SIMULATION_SETTINGS, lowering="_simulation"),
    BlockDef("personalize", _ast.PersonalizeBlock, "personalize:check_personalize", _checked.PersonalizeConfig,
             "The personalize block: local fine-tuning", PERSONALIZE_SETTINGS,
             example="personalize {\n  epochs 5\n  optimizer sgd(learning_rate = 0.001)\n}", lowering="_personal"),
    BlockDef("monitor", _ast.MonitorBlock, "monitor:check_monitor", _checked.MonitorConfig, "The monitor block",
             lowering="_monitor"),
    BlockDef("runtime", _ast.RuntimeBlock, "runtime:check_runtime", _checked.RuntimeConfig,
             "The runtime block: where the rounds run", RUNTIME_SETTINGS,
             example='runtime {\n  remote ["10.0.0.5:8000", "10.0.0.6:8000"]\n}', lowering="_runtime"),
)
BLOCK_BY_KEYWORD: dict[str, BlockDef] = {b.keyword: b for b in BLOCK_DEFS}
BLOCK_KEYWORDS = tuple(BLOCK_BY_KEYWORD)  # every top-level keyword, lines and blocks
TOP_LINES = tuple(b.keyword for b in BLOCK_DEFS if b.line)
BLOCKS = tuple(b.keyword for b in BLOCK_DEFS if not b.line)
REQUIRED_BLOCKS = tuple(b.keyword for b in BLOCK_DEFS if b.required)
MODEL_LINES = ("input", "loss", "metrics")

# Names from other tools that users type out of habit, and what fedlang calls them.
ALIASES = {
    "lr": "learning_rate", "learning-rate": "learning_rate", "epochs": "local_epochs",
    "num_epochs": "local_epochs", "local_steps": "local_epochs", "num_rounds": "rounds",
    "batch_size": "batch", "num_clients": "clients", "n_clients": "clients",
    "clients": "clients_per_round", "num_clients_per_round": "clients_per_round",
    "optimizer": "client_optimizer", "server_lr": "server_optimizer", "client_lr": "client_optimizer",
    "units": "dense", "linear": "dense", "fc": "dense", "conv": "conv2d", "conv2D": "conv2d",
    "max_pool": "maxpool", "maxpooling2d": "maxpool", "pool": "maxpool", "flat": "flatten",
    "crossentropy": "sparse_categorical_crossentropy",
    "categorical_crossentropy": "sparse_categorical_crossentropy",
    "cross_entropy": "sparse_categorical_crossentropy", "bce": "binary_crossentropy",
    "acc": "accuracy", "sparse_categorical_accuracy": "accuracy", "mnist": "emnist",
    "digits": "sklearn.digits", "iris": "sklearn.iris", "wine": "sklearn.wine",
    "breast_cancer": "sklearn.breast_cancer", "fed_avg": "fedavg", "fedavgm": "fedavg",
    "fed_prox": "fedprox", "fed_sgd": "fedsgd", "random": "iid", "uniform": "iid", "label_skew": "dirichlet",
    "proximal": "mu", "test_split": "test", "holdout": "test",
}


def home_of(word: str) -> tuple[str, str] | None:
    """(where, description) of where a word may be written, if anywhere: a block name, "top"
    for a block keyword itself, or "experiment"/"seed" for those top-level lines."""
    if word in LAYERS:
        return "model", "a layer"
    if word in MODEL_LINES:
        return "model", "a model line"
    if word in TOP_LINES:
        return word, "a top-level line"
    if word in BLOCKS:
        return "top", "a block"
    for block in BLOCK_DEFS:
        if block.settings and any(p.name == word for p in block.settings):
            return block.keyword, f"a {block.keyword} setting"
    return None


def move_hint(home: str) -> str:
    """How to fix a word written in the wrong place (`home` as returned by home_of)."""
    if home == "top":
        return "blocks do not nest: close this block with '}' before starting the next"
    if home in TOP_LINES:
        return f"write `{home} …` on a line of its own at the top of the spec, outside any block"
    return f"move it to the {home} block"
