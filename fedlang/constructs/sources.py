"""Data sources: one `SourceDef` per `source` form, with every hook the compiler needs.

- `form`: the keyword and its options;
- `facts(choice, path, base_dir)`: what `check` knows before the run (`SourceFacts`: sizes,
  shapes, classes, and a file's labels and client ids), or a `SourceError`;
- `replay(choice, rng, labels, client_ids)`: the labels and client ids the run will see, drawn
  from `rng` exactly as the emitted `load_data()` draws them (None: unknown before the run);
- `load(choice, path)`: the statements of `load_data()` that read the examples, as `Assign`s
  binding `x, y` (`client_ids` too when the source can have client ids; `x_test, y_test` when
  `test_split`);
- `helpers`: (fedlang/lib module, function names) the emitted program copies;
- `imports`, `requires`: import lines of the program's own code, and packages for its header.

Nothing here imports TensorFlow; file sources read their files with NumPy only.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..checked import Choice, DatasetFacts
from ..forms import Form, Param, forms
from ..plan import Assign, PyCall, PyRef


@dataclass(frozen=True)
class SourceFacts:
    facts: DatasetFacts
    labels: np.ndarray | None = None  # a file's labels (the others are replayed or unknown)
    client_ids: np.ndarray | None = None


@dataclass(frozen=True)
class SourceError:
    """A source `check` cannot use; reported at the path (or the source) in the spec."""

    code: str
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class SourceDef:
    form: Form
    facts: Callable[[Choice, Path | None, Path], "SourceFacts | SourceError"]
    replay: Callable[[Choice, Any, Any, Any], "tuple[np.ndarray, np.ndarray | None] | None"]
    load: Callable[[Choice, str | None], tuple[Assign, ...]]
    helpers: tuple[tuple[str, tuple[str, ...]], ...] = ()
    imports: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    test_split: bool = False  # the source has its own test split (`test split`)
    path_option: str | None = None  # the option naming a file, relative to the spec's folder
    streamed: bool = False  # one file per client, read with tf.data as it trains (partition natural only)
    # streamed: (facts, feature shape and dtype) -> (count call, read call) on `path`; lower copies their helpers
    stream: Callable[[Choice, DatasetFacts, tuple[int, ...], str], tuple[PyCall, PyCall]] | None = None
    docs: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.form.name


# ---------------------------------------------------------------- scikit-learn's bundled sets


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


def bundled_labels(source_name: str) -> np.ndarray:
    """The labels of a scikit-learn bundled set, read from its data file without importing sklearn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise OSError("scikit-learn is not installed")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / SKLEARN_SETS[source_name].file
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        last_fields = [line.rsplit(",", 1)[-1] for line in f.read().splitlines() if line]
    if last_fields and not last_fields[0].replace(".", "", 1).isdigit():
        last_fields = last_fields[1:]  # a header: the example and feature counts, then the class names
    return np.array(last_fields, dtype=np.float64).astype(np.int64)


def _sklearn_source(name: str, info: BundledSet) -> SourceDef:
    def facts(choice, path, base_dir):
        return SourceFacts(DatasetFacts(info.examples, info.features, info.classes, None,
                                        f"scikit-learn {name.split('.')[1]}"))

    def replay(choice, rng, labels, client_ids):
        try:
            return bundled_labels(name), None
        except (OSError, ValueError):  # no scikit-learn, or another file layout: check just cannot count
            return None

    def load(choice, path):
        return (Assign("x, y", PyCall.of(f"sklearn.datasets.{info.loader}", return_X_y=True)),)

    return SourceDef(
        Form(name, (), doc=f"scikit-learn's bundled {name.split('.')[1].replace('_', ' ')} set "
                           f"({info.examples} examples, {info.features[0]} features, {info.classes} classes)",
             example=f"source {name}"),
        facts=facts, replay=replay, load=load, imports=("import sklearn.datasets",), requires=("scikit-learn",))


# ---------------------------------------------------------------- synthetic (FedProx)


# Check replays the run's draws (check/synthetic.py): ~25 ns of CPU per normal drawn. A device
# draws features × classes weights and, on average, e^6 + 50 ≈ 453 examples of `features` values
# (lognormal sizes), so the expected draws are devices × features × (classes + 453): at most 3e7
# (~0.7 s). The FedProx paper's 30 devices × 60 features × 10 classes draw 8e5.
SYNTHETIC_MAX_DRAWS = 30_000_000


def _synthetic_facts(choice, path, base_dir):
    draws = choice["devices"] * choice["features"] * (choice["classes"] + 453)
    if draws > SYNTHETIC_MAX_DRAWS:
        return SourceError("E508", f"synthetic data too large to generate: devices × features × (classes + 453) is "
                                   f"{draws:,}, above the limit {SYNTHETIC_MAX_DRAWS:,} (values check draws to replay "
                                   f"the run's split)",
                           "use fewer devices or features (the FedProx paper uses 30 devices, 60 features)")
    return SourceFacts(DatasetFacts(None, (choice["features"],), choice["classes"], choice["devices"],
                                    f"Synthetic({choice['alpha']:g}, {choice['beta']:g})"
                                    + (" iid" if choice["iid"] else "")))


def _synthetic_call(choice) -> PyCall:
    return PyCall.of("synthetic_fedprox", alpha=choice["alpha"], beta=choice["beta"], num_devices=choice["devices"],
                     num_features=choice["features"], num_classes=choice["classes"], iid=choice["iid"],
                     rng=PyRef("rng"))


def _synthetic_replay(choice, rng, labels, client_ids):
    from ..check.synthetic import synthetic_labels  # the run's draws, without keeping the features

    return synthetic_labels(alpha=choice["alpha"], beta=choice["beta"], num_devices=choice["devices"],
                            num_features=choice["features"], num_classes=choice["classes"], iid=choice["iid"],
                            rng=rng)


# ---------------------------------------------------------------- markov (generated next-token text)


def _markov_facts(choice, path, base_dir):
    if choice["length"] <= choice["window"]:
        return SourceError("E508", f"each markov client writes {choice['length']} tokens, too few for windows of "
                                   f"{choice['window']} plus the next token",
                           f"use length > window, e.g. length = {choice['window'] * 10}")
    from ..check.markov import markov_too_large

    too_large = markov_too_large(choice["clients"], choice["vocab"], choice["length"], choice["window"])
    if too_large is not None:
        return SourceError("E508", f"markov text too large to generate: {too_large}",
                           "use fewer clients, a smaller vocab or shorter texts (check replays the text)")
    return SourceFacts(DatasetFacts(choice["clients"] * (choice["length"] - choice["window"]), (choice["window"],),
                                    choice["vocab"], choice["clients"],
                                    f"Markov text ({choice['vocab']} tokens, skew {choice['skew']:g})",
                                    tokens=choice["vocab"]))


def _markov_options(choice) -> dict[str, Any]:
    return {k: choice[k] for k in ("vocab", "clients", "length", "window", "skew", "concentration")}


def _markov_replay(choice, rng, labels, client_ids):
    from ..check.markov import markov_labels  # the run's draws, without the windows

    return markov_labels(**_markov_options(choice), rng=rng)


# ---------------------------------------------------------------- files (npz, csv)


def _file_facts(choice, path: Path, base_dir: Path) -> "SourceFacts | SourceError":
    from ..check.datafiles import not_a_file, npz_too_large
    from ..lib import data as datalib  # NumPy only

    kind = not_a_file(path)
    if kind is not None:
        return SourceError("E501", f"cannot read {choice.name} data: {path} is {kind}, not a file",
                           f"give the path of a .{choice.name} file")
    if choice.name == "npz":
        too_large = npz_too_large(path, [k for k in (choice["x"], choice["y"], choice["client"]) if k])
        if too_large is not None:
            return SourceError("E521", f"cannot read npz data: {too_large}",
                               "check a sample of the data (e.g. the first 100,000 examples) in a smaller .npz")
    try:
        if choice.name == "npz":
            x, y, clients = datalib.checked_load_npz(str(path), choice["x"], choice["y"], choice["client"])
        else:
            x, y, clients = datalib.checked_load_csv(str(path), choice["label"], choice["client"])
    except (OSError, ValueError, csv.Error) as exc:
        # The loaders describe a file's contents rather than quote them; cap the message anyway.
        return SourceError("E501", f"cannot read {choice.name} data: {_capped(str(exc))}",
                           _read_hint(choice, exc, path, base_dir))
    if x.ndim < 2:
        return SourceError("E501", f"cannot read {choice.name} data: {path}: array '{choice['x']}' has shape "
                                   f"{list(x.shape)}; expected one row of features per example",
                           "save x with shape [examples, features…], e.g. x.reshape(-1, 1) for one feature")
    if len(y) and int(y.min()) < 0:
        return SourceError("E502", f"labels in {path.name} must be class numbers 0, 1, 2, …; found a negative label")
    classes = int(y.max()) + 1 if len(y) else 0
    natural = None if clients is None else len(set(clients.tolist()))
    tokens = int(x.max()) + 1 if x.size and x.min() >= 0 and np.all(x == np.round(x)) else None  # token ids?
    return SourceFacts(DatasetFacts(len(y), tuple(x.shape[1:]), max(classes, 2), natural, f"{path.name}",
                                    tokens=tokens), y, clients)


def _read_hint(source: Choice, exc: Exception, path: Path, base_dir: Path) -> str | None:
    if isinstance(exc, FileNotFoundError):
        written = str(source["path"])
        if written.startswith("~") and not _home_known(written):
            user = written[1:].split("/")[0]
            return f"'~{user}' is not a home folder here: this machine has no user '{user}'"
        return f"paths are relative to the spec's folder ({base_dir.as_posix() or '.'})"
    if path.is_dir():
        return "give the path of a file, not a folder"
    from ..lib.data import DataError

    if not isinstance(exc, DataError):
        return None
    if exc.kind == "missing_array":  # npz: which role lacks its array, and what the file has instead
        roles = {source[r]: r for r in ("x", "y", "client") if source[r] is not None}
        role = roles.get(exc.name, "y")
        others = [a[:40] for a in exc.names if a not in roles]
        if others:
            return f'say which array to use, e.g. npz("…", {role} = "{others[0]}")'
        return f"the file has no array for {role}; save it with np.savez(path, x = …, y = …)"
    if exc.kind == "missing_column":
        return 'name the column to use, e.g. csv("…", label = "target")'
    if exc.kind == "not_a_number":
        if source["client"] is None:
            column = exc.name[:40]
            return (f"every column except the label must hold numbers; if '{column}' says which "
                    f"client an example belongs to, write csv(\"…\", client = \"{column}\")")
        return "every column except the label (and client) column must hold numbers"
    if exc.kind == "repeated_column":
        return "give every column of the header its own name"
    if exc.kind == "row_length":
        return "every row needs one cell per column of the header"
    return None


def _capped(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _home_known(path: str) -> bool:
    try:
        Path(path).expanduser()
        return True
    except RuntimeError:
        return False


def _file_replay(choice, rng, labels, client_ids):
    return (labels, client_ids) if labels is not None else None


# ---------------------------------------------------------------- files (one client per file, streamed)


def _files_facts(choice, pattern: Path, base_dir: Path) -> "SourceFacts | SourceError":
    from ..lib import files as fileslib  # NumPy only

    try:
        paths = fileslib.checked_client_files(str(pattern))
    except FileNotFoundError as exc:
        return SourceError("E501", f"cannot read files: {exc}",
                           f"patterns are relative to the spec's folder ({base_dir.as_posix() or '.'})")
    except ValueError as exc:
        return SourceError("E501", f"cannot read files: {exc}", "end the pattern with one format, e.g. *.csv")
    try:
        found = [fileslib.client_file_facts(p, choice["x"], choice["y"]) for p in paths]
    except (OSError, ValueError, csv.Error, struct.error, IndexError) as exc:
        return SourceError("E501", f"cannot read files: {exc}", None)
    shapes = {(shape, stored) for _, shape, stored, _, _ in found}
    if len(shapes) > 1:
        first, other = found[0], next(f for f in found if (f[1], f[2]) != (found[0][1], found[0][2]))
        return SourceError("E501", f"cannot read files: {paths[0]} has {first[2]} examples of shape "
                                   f"{list(first[1])}, {paths[found.index(other)]} {other[2]} of shape {list(other[1])}",
                           "every client's file must hold examples of one shape and type")
    counts = [f[0] for f in found]
    labels = np.concatenate([f[3] for f in found])
    tops = [f[4] for f in found]
    tokens = max(tops) if all(t is not None for t in tops) else None
    (shape, stored), = shapes
    facts = DatasetFacts(sum(counts), shape, max(int(labels.max()) + 1, 2), len(paths),
                         f"{len(paths)} {Path(paths[0]).suffix} files ({choice['pattern']})", tokens=tokens,
                         stored=stored, file_format=Path(paths[0]).suffix)
    client_ids = np.repeat(np.arange(len(paths)), counts)
    return SourceFacts(facts, labels, client_ids)


def _files_load(choice, pattern: str | None) -> tuple[Assign, ...]:
    return (Assign("files", PyCall.of("client_files", pattern)),)


# Per format: the counter of a file's examples (fedlang/lib/files.py) with the options it takes, and
# its tf.data reader (fedlang/lib/streams.py) with its options; a program copies only its format's two.
FILE_FORMATS: dict[str, tuple[str, tuple[str, ...], str, tuple[str, ...]]] = {
    ".tfrecord": ("count_tfrecord_records", (), "read_tfrecord_file", ("x", "y", "stored")),
    ".csv": ("count_csv_rows", (), "read_csv_file", ("y",)),
    ".npz": ("count_npz_labels", ("y",), "read_npz_file", ("x", "y")),
}


def _files_stream(choice, facts: DatasetFacts, shape: tuple[int, ...], dtype: str) -> tuple[PyCall, PyCall]:
    """(the count of the examples in the file `path`, its tf.data reader giving features of `shape`
    and `dtype`): calls the program makes."""
    count, count_options, read, read_options = FILE_FORMATS[facts.file_format]
    options = {"x": choice["x"], "y": choice["y"], "stored": facts.stored}
    return (PyCall.of(count, PyRef("path"), *(options[o] for o in count_options)),
            PyCall.of(read, PyRef("path"), *(options[o] for o in read_options), list(shape), PyRef(f"tf.{dtype}")))


# ---------------------------------------------------------------- emnist

EMNIST_FACTS = {True: (341873, 3383, 10), False: (671585, 3400, 62)}  # examples, clients, classes


def _emnist_facts(choice, path, base_dir):
    examples, clients, classes = EMNIST_FACTS[choice["only_digits"]]
    return SourceFacts(DatasetFacts(examples, (28, 28), classes, clients,
                                    "federated EMNIST" + (" (digits)" if choice["only_digits"] else "")))


# ---------------------------------------------------------------- the table

SOURCE_DEFS: tuple[SourceDef, ...] = (
    *(_sklearn_source(name, info) for name, info in SKLEARN_SETS.items()),
    SourceDef(
        Form("synthetic", (
            Param("alpha", "float", default=1.0, low=0, high=1000, doc="model heterogeneity across devices"),
            Param("beta", "float", default=1.0, low=0, high=1000, doc="data heterogeneity across devices"),
            # Each device draws int(lognormal(4, 2)) + 50 examples (~450 on average): 10,000 devices
            # are ~4.5 million examples, which check replays in a few seconds and bounded memory.
            Param("devices", "int", default=30, low=1, high=10_000),
            Param("features", "int", default=60, low=1, high=10_000),
            Param("classes", "int", default=10, low=2, high=10_000),
            Param("iid", "bool", default=False)),
            doc="the FedProx paper's Synthetic(α, β) generator; one client per device",
            example="source synthetic(alpha = 1, beta = 1)"),
        facts=_synthetic_facts, replay=_synthetic_replay,
        load=lambda choice, path: (Assign("x, y, client_ids", _synthetic_call(choice)),),
        helpers=(("data.py", ("synthetic_fedprox",)),)),
    SourceDef(
        Form("markov", (
            Param("vocab", "int", default=20, low=2, doc="token ids 0 … vocab−1 (also the classes)"),
            Param("clients", "int", default=50, low=1, doc="clients, each writing its own text"),
            Param("length", "int", default=200, low=2, doc="tokens each client writes"),
            Param("window", "int", default=8, low=1, doc="tokens of context per example"),
            Param("skew", "float", default=0.8, low=0, high=1,
                  doc="weight of each client's own chain against the shared one (0 = IID text)"),
            Param("concentration", "float", default=0.1, low=0, low_open=True,
                  doc="Dirichlet concentration of the transition rows (small = predictable text)")),
            doc="generated next-token data, one client per writer: each client's text follows its own "
                "Markov chain; examples are windows of token ids, labels the token that follows",
            example="source markov(vocab = 20, clients = 50, length = 200)"),
        facts=_markov_facts, replay=_markov_replay,
        load=lambda choice, path: (Assign("x, y, client_ids", PyCall.of(
            "markov_sequences", **_markov_options(choice), rng=PyRef("rng"))),),
        helpers=(("data.py", ("markov_sequences",)),)),
    SourceDef(
        Form("npz", (Param("path", "str", doc="the .npz file, relative to the spec's folder"),
                     Param("x", "str", default="x", doc="name of the features array"),
                     Param("y", "str", default="y", doc="name of the labels array"),
                     Param("client", "str", default=None, doc="array of client ids (natural partition)")),
             doc="a NumPy .npz file you supply", example='source npz("data/train.npz")'),
        facts=_file_facts, replay=_file_replay,
        load=lambda choice, path: (Assign("x, y, client_ids", PyCall.of(
            "load_npz", path, x_key=choice["x"], y_key=choice["y"], client_key=choice["client"])),),
        helpers=(("data.py", ("load_npz",)),), path_option="path"),
    SourceDef(
        Form("csv", (Param("path", "str", doc="the .csv file, relative to the spec's folder"),
                     Param("label", "str", default="label", doc="name of the label column"),
                     Param("client", "str", default=None, doc="client-id column (natural partition)")),
             doc="a CSV file with a header row; every other column is a feature",
             example='source csv("data/train.csv", label = "target", client = "user")'),
        facts=_file_facts, replay=_file_replay,
        load=lambda choice, path: (Assign("x, y, client_ids", PyCall.of(
            "load_csv", path, label=choice["label"], client=choice["client"])),),
        helpers=(("data.py", ("load_csv",)),), path_option="path"),
    SourceDef(
        Form("files", (Param("pattern", "str", doc="glob of the clients' files (*.csv, *.npz or *.tfrecord), "
                                                   "relative to the spec's folder"),
                       Param("x", "str", default="x", doc="features: npz array or TFRecord feature (csv: "
                                                          "every column but the label)"),
                       Param("y", "str", default="y", doc="labels: npz array, TFRecord feature or csv column")),
             doc="one client per file, streamed with tf.data as the client trains",
             example='source files("silos/*.tfrecord")'),
        facts=_files_facts, replay=_file_replay, load=_files_load,
        helpers=(("files.py", ("client_files",)),),
        path_option="pattern", streamed=True, stream=_files_stream),
    SourceDef(
        Form("emnist", (Param("only_digits", "bool", default=True), Param("cache_dir", "str", default=None)),
             doc="TFF's federated EMNIST (by writer); needs the data set in TFF's cache when offline",
             example="source emnist(only_digits = true)"),
        facts=_emnist_facts, replay=lambda choice, rng, labels, client_ids: None,
        load=lambda choice, path: (Assign("(x, y, client_ids), (x_test, y_test, _)", PyCall.of(
            "load_emnist", only_digits=choice["only_digits"], cache_dir=choice["cache_dir"])),),
        helpers=(("emnist.py", ("load_emnist",)),), test_split=True),
)

SOURCE_BY_NAME: dict[str, SourceDef] = {d.name: d for d in SOURCE_DEFS}
SOURCES: dict[str, Form] = forms(*(d.form for d in SOURCE_DEFS))
