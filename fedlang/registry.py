"""Everything a spec may name: blocks' settings, layers, sources, partitions, optimizers.

This table is the single source of truth for the checker (what is valid), the lowering
(what it becomes) and docs/language.md (what is documented). Adding an option means adding a
`Param` here and using it in fedlang/lower.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED = _Required()


@dataclass(frozen=True)
class Param:
    """One option of a form or one setting of a block, with its type and valid range.

    type: int | float | bool | str | name | shape | names | size (int or [int, int]) |
          scale (minmax, standard or a positive number) | form (one of `forms`)
    """

    name: str
    type: str
    default: object = REQUIRED
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    forms: Mapping[str, "Form"] | None = None
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def range_text(self) -> str | None:
        lo = None if self.low is None else f"{'>' if self.low_open else '>='} {_fmt(self.low)}"
        hi = None if self.high is None else f"{'<' if self.high_open else '<='} {_fmt(self.high)}"
        if lo and hi:
            return f"in {'(' if self.low_open else '['}{_fmt(self.low)}, {_fmt(self.high)}{')' if self.high_open else ']'}"
        return lo or hi


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


@dataclass(frozen=True)
class Form:
    """A named choice with options, written `name` or `name(arg, key = value)`."""

    name: str
    params: tuple[Param, ...] = ()
    doc: str = ""
    example: str = ""

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


def _forms(*forms: Form) -> dict[str, Form]:
    return {f.name: f for f in forms}


# ---------------------------------------------------------------- model

ACTIVATIONS = ("linear", "relu", "sigmoid", "softmax", "tanh", "elu", "selu", "gelu", "swish", "softplus")
PADDINGS = ("valid", "same")

_activation = Param("activation", "name", default="linear", choices=ACTIVATIONS, doc="activation function")

LAYERS = _forms(
    Form("dense", (Param("units", "int", low=1, doc="output units"), _activation,
                   Param("use_bias", "bool", default=True, doc="add a bias vector")),
         doc="fully connected layer", example="dense 128 relu"),
    Form("dropout", (Param("rate", "float", low=0, high=1, high_open=True, doc="fraction dropped"),),
         doc="dropout (active during local training only)", example="dropout 0.2"),
    Form("conv2d", (Param("filters", "int", low=1, doc="output channels"), _activation,
                    Param("kernel", "size", default=3, doc="window size, n or [h, w]"),
                    Param("strides", "size", default=1, doc="step, n or [h, w]"),
                    Param("padding", "name", default="valid", choices=PADDINGS, doc="valid or same")),
         doc="2-d convolution over [height, width, channels]", example="conv2d 32 relu kernel = 3"),
    Form("maxpool", (Param("pool", "size", default=2, doc="window size, n or [h, w]"),
                     Param("strides", "size", default=None, doc="step, n or [h, w] (default: the pool size)"),
                     Param("padding", "name", default="valid", choices=PADDINGS, doc="valid or same")),
         doc="2-d max pooling", example="maxpool 2"),
    Form("flatten", (), doc="flattens to a vector", example="flatten"),
    Form("reshape", (Param("shape", "shape", doc="new shape of one example"),), doc="reshapes (batch dimension excluded)",
         example="reshape [8, 8, 1]"),
)

LOSSES = _forms(
    Form("sparse_categorical_crossentropy", doc="integer class labels; softmax (or linear = logits) output"),
    Form("binary_crossentropy", doc="two classes; one sigmoid (or linear = logit) output unit"),
)

METRICS = ("accuracy", "auc", "precision", "recall")
BINARY_ONLY_METRICS = ("auc", "precision", "recall")


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class BundledSet:
    """A data set that ships inside scikit-learn: its facts are known without loading it."""

    loader: str
    examples: int
    features: tuple[int, ...]
    classes: int
    value_range: tuple[float, float]
    file: str  # in sklearn/datasets/data/: rows of features, the label last (the loader reads it)


SKLEARN_SETS = {
    "sklearn.digits": BundledSet("load_digits", 1797, (64,), 10, (0.0, 16.0), "digits.csv.gz"),
    "sklearn.breast_cancer": BundledSet("load_breast_cancer", 569, (30,), 2, (0.0, 4254.0), "breast_cancer.csv"),
    "sklearn.wine": BundledSet("load_wine", 178, (13,), 3, (0.13, 1680.0), "wine_data.csv"),
    "sklearn.iris": BundledSet("load_iris", 150, (4,), 3, (0.1, 7.9), "iris.csv"),
}

EMNIST_FACTS = {True: (341873, 3383, 10), False: (671585, 3400, 62)}  # examples, clients, classes

SOURCES = _forms(
    *(Form(name, (), doc=f"scikit-learn's bundled {name.split('.')[1].replace('_', ' ')} set "
                        f"({s.examples} examples, {s.features[0]} features, {s.classes} classes)",
           example=f"source {name}")
      for name, s in SKLEARN_SETS.items()),
    Form("synthetic", (
        Param("alpha", "float", default=1.0, low=0, doc="model heterogeneity across devices"),
        Param("beta", "float", default=1.0, low=0, doc="data heterogeneity across devices"),
        Param("devices", "int", default=30, low=1),
        Param("features", "int", default=60, low=1),
        Param("classes", "int", default=10, low=2),
        Param("iid", "bool", default=False)),
        doc="the FedProx paper's Synthetic(α, β) generator; one client per device",
        example="source synthetic(alpha = 1, beta = 1)"),
    Form("npz", (Param("path", "str", doc="the .npz file, relative to the spec's folder"),
                 Param("x", "str", default="x", doc="name of the features array"),
                 Param("y", "str", default="y", doc="name of the labels array"),
                 Param("client", "str", default=None, doc="array of client ids (natural partition)")),
         doc="a NumPy .npz file you supply", example='source npz("data/train.npz")'),
    Form("csv", (Param("path", "str", doc="the .csv file, relative to the spec's folder"),
                 Param("label", "str", default="label", doc="name of the label column"),
                 Param("client", "str", default=None, doc="client-id column (natural partition)")),
         doc="a CSV file with a header row; every other column is a feature",
         example='source csv("data/train.csv", label = "target", client = "user")'),
    Form("emnist", (Param("only_digits", "bool", default=True), Param("cache_dir", "str", default=None)),
         doc="TFF's federated EMNIST (by writer); needs the data set in TFF's cache when offline",
         example="source emnist(only_digits = true)"),
)

NATURAL_SOURCES = ("synthetic", "emnist")  # sources that come with client ids

PARTITIONS = _forms(
    Form("iid", (Param("clients", "int", low=1, doc="number of clients"),), doc="uniformly random, equal-sized clients",
         example="partition iid(clients = 10)"),
    Form("dirichlet", (Param("alpha", "float", low=0, low_open=True,
                             doc="concentration; small (0.1) = strong label skew, large (100) = nearly iid"),
                       Param("clients", "int", low=1, doc="number of clients"),
                       Param("min_examples", "int", default=1, low=1, doc="fewest examples any client gets")),
         doc="label skew: class proportions per client drawn from Dir(alpha)",
         example="partition dirichlet(alpha = 0.5, clients = 100)"),
    Form("shards", (Param("clients", "int", low=1, doc="number of clients"),
                    Param("per_client", "int", default=2, low=1, doc="shards per client")),
         doc="McMahan et al.'s pathological split: sorted by label, k shards per client",
         example="partition shards(clients = 100, per_client = 2)"),
    Form("natural", (), doc="one client per client id of the source", example="partition natural"),
)

TESTS = _forms(
    Form("holdout", (Param("fraction", "float", low=0, high=1, low_open=True, high_open=True,
                           doc="share of all examples held out for testing, e.g. 0.2"),),
         doc="a random fraction of all examples, held out before partitioning",
         example="test holdout(0.2)"),
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
    Param("batch", "int", default=32, low=1, doc="local batch size"),
    Param("shuffle", "int", default=0, low=0, doc="shuffle buffer (0 = no shuffling)"),
)


# ---------------------------------------------------------------- train

_lr = Param("learning_rate", "float", low=0, low_open=True, doc="step size, e.g. 0.01")


def _optional_lr(default: float) -> Param:
    return Param("learning_rate", "float", default=default, low=0, low_open=True,
                 doc=f"step size (default {default:g})")


_beta1 = Param("beta_1", "float", default=0.9, low=0, high=1, high_open=True, doc="decay of the first moment")
_beta2 = Param("beta_2", "float", default=0.999, low=0, high=1, high_open=True, doc="decay of the second moment")
_momentum = Param("momentum", "float", default=0.0, low=0, high=1, high_open=True, doc="0 = plain SGD, e.g. 0.9")

CLIENT_OPTIMIZERS = _forms(
    Form("sgd", (_lr, _momentum),
         doc="SGD, optionally with momentum", example="client_optimizer sgd(learning_rate = 0.05)"),
    Form("adam", (_optional_lr(0.001), _beta1, _beta2,
                  Param("epsilon", "float", default=1e-7, low=0, low_open=True)),
         doc="Adam", example="client_optimizer adam(learning_rate = 0.001)"),
)

SERVER_OPTIMIZERS = _forms(
    Form("sgd", (_optional_lr(1.0), _momentum),
         doc="SGD on the averaged update; momentum > 0 is FedAvgM",
         example="server_optimizer sgd(learning_rate = 1.0, momentum = 0.9)"),
    Form("adam", (_optional_lr(0.01), _beta1, _beta2,
                  Param("epsilon", "float", default=1e-3, low=0, low_open=True)),
         doc="FedAdam", example="server_optimizer adam(learning_rate = 0.01)"),
    Form("yogi", (_optional_lr(0.01), _beta1, _beta2,
                  Param("epsilon", "float", default=1e-3, low=0, low_open=True),
                  Param("initial_preconditioner_value", "float", default=1e-6, low=0, low_open=True)),
         doc="FedYogi", example="server_optimizer yogi(learning_rate = 0.01)"),
    Form("adagrad", (_optional_lr(0.01), Param("initial_preconditioner_value", "float", default=0.1, low=0),
                     Param("epsilon", "float", default=1e-7, low=0, low_open=True)),
         doc="FedAdagrad", example="server_optimizer adagrad(learning_rate = 0.01)"),
)

ALGORITHMS = {
    "fedavg": "Federated Averaging (McMahan et al. 2017)",
    "fedprox": "FedProx: FedAvg with a proximal term mu/2·||w − w_global||² (Li et al. 2020)",
    "fedsgd": "FedSGD: one full-batch gradient per client per round",
}

WEIGHTINGS = ("examples", "uniform")

TRAIN_SETTINGS = (
    Param("rounds", "int", low=1, doc="number of federated rounds"),
    Param("clients_per_round", "int", default=None, low=1,
          doc="clients sampled uniformly without replacement each round (default: all)"),
    Param("local_epochs", "int", default=1, low=1, doc="passes over local data per round"),
    Param("client_optimizer", "form", default=("sgd", {"learning_rate": 0.02}), forms=CLIENT_OPTIMIZERS,
          doc="optimizer for local training"),
    Param("server_optimizer", "form", default=("sgd", {"learning_rate": 1.0}), forms=SERVER_OPTIMIZERS,
          doc="optimizer applied to the aggregated update"),
    Param("weighting", "name", default="examples", choices=WEIGHTINGS,
          doc="examples: weight client updates by example count; uniform: plain mean"),
    Param("mu", "float", default=None, low=0, doc="FedProx proximal strength (fedprox only)"),
)

EVALUATE_SETTINGS = (
    Param("every", "int", default=1, low=1, doc="evaluate on the test set every k rounds (and after the last)"),
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
)

# Library aggregators (fedlang/lib/federated.py); an `aggregate` block's name is accepted too.
ROBUST_AGGREGATORS = _forms(
    Form("trimmed_mean", (Param("fraction", "float", default=0.1, low=0, high=0.5, high_open=True,
                                doc="share of values trimmed at each end, per coordinate"),),
         doc="coordinate-wise trimmed mean of the client updates", example="aggregator trimmed_mean(fraction = 0.1)"),
    Form("median", (), doc="coordinate-wise median of the client updates", example="aggregator median"),
    Form("norm_clipped_mean", (Param("clip", "float", low=0, low_open=True, doc="L2 norm bound"),),
         doc="mean of updates clipped to an L2 norm", example="aggregator norm_clipped_mean(clip = 1.0)"),
    Form("zeroing_mean", (Param("threshold", "float", low=0, low_open=True, doc="L2 norm bound"),),
         doc="mean in which updates with a larger norm count as zero", example="aggregator zeroing_mean(threshold = 5)"),
    Form("krum", (Param("byzantine", "int", default=1, low=0, doc="Byzantine clients tolerated (f)"),),
         doc="Krum (Blanchard et al. 2017): the update closest to its n − f − 2 neighbours",
         example="aggregator krum(byzantine = 1)"),
    Form("multi_krum", (Param("byzantine", "int", default=1, low=0, doc="Byzantine clients tolerated (f)"),
                        Param("m", "int", low=1, doc="updates averaged")),
         doc="Multi-Krum: the mean of the m best-scored updates", example="aggregator multi_krum(byzantine = 1, m = 5)"),
)
GATHERING_AGGREGATORS = ("trimmed_mean", "median", "krum", "multi_krum")

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

HEADER_SEED = Param("seed", "int", low=0, high=2**31 - 1, doc="seeds data, partition, sampling and weights")


# ---------------------------------------------------------------- where words belong (for messages)

MODEL_LINES = ("input", "loss", "metrics")
BLOCKS = ("model", "data", "train", "evaluate", "privacy", "aggregation", "attack", "aggregate", "round")
TOP_LINES = ("experiment", "seed")

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
    for block, params in (("data", DATA_SETTINGS), ("train", TRAIN_SETTINGS), ("evaluate", EVALUATE_SETTINGS),
                          ("privacy", PRIVACY_SETTINGS), ("aggregation", AGGREGATION_SETTINGS),
                          ("attack", ATTACK_SETTINGS)):
        if any(p.name == word for p in params):
            return block, f"a {block} setting"
    return None


def move_hint(home: str) -> str:
    """How to fix a word written in the wrong place (`home` as returned by home_of)."""
    if home == "top":
        return "blocks do not nest: close this block with '}' before starting the next"
    if home in TOP_LINES:
        return f"write `{home} …` on a line of its own at the top of the spec, outside any block"
    return f"move it to the {home} block"
