"""The lowered plan: what to build, as calls with literal arguments.

A plan is the single input of both back ends: the emitter renders it as Python source, and
`fedlang run` executes exactly that source. Calls are `PyCall(func, args)` where `func` is a
constant chosen by the lowering (never text from the spec) and every argument is a literal
rendered with `repr`, so a spec cannot inject code.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any


@dataclass(frozen=True)
class PyRef:
    """A reference to a name defined in the emitted program, e.g. `model_fn`."""

    name: str


@dataclass(frozen=True)
class PyCall:
    """`func(args…)`: func is a name chosen by the lowering, or a call whose result is called."""

    func: "str | PyCall"
    args: tuple[tuple[str | None, Any], ...] = ()

    @staticmethod
    def of(func: str, *positional: Any, **keywords: Any) -> "PyCall":
        return PyCall(func, tuple((None, p) for p in positional) + tuple(keywords.items()))


@dataclass(frozen=True)
class PyAttr:
    """`value.name`: an attribute of a call's result."""

    value: PyCall
    name: str


@dataclass(frozen=True)
class PyOp:
    """`left op right` for an arithmetic operator (+, -, *, /)."""

    left: Any
    op: str
    right: Any


@dataclass(frozen=True)
class AggregateStep:
    """One Federated Core step of an aggregate block: `target = value` (or `return value`), with
    the value's TFF type for its comment."""

    target: str | None
    value: Any  # PyCall, PyAttr or PyRef
    type: str


@dataclass(frozen=True)
class AggregateCode:
    """An aggregate (or round) block as a federated computation `aggregate_<name>(dim)`."""

    name: str
    py_name: str  # the inner computation's name
    param: str
    steps: tuple[AggregateStep, ...]
    source: "Section"
    is_round: bool = False  # the round block's aggregation steps (the rest of the round is FedAvg's own)


@dataclass(frozen=True)
class Section:
    """The .fed lines a part of the emitted program came from (for its comment)."""

    first: int
    last: int
    text: tuple[str, ...]


@dataclass(frozen=True)
class HoldOut:
    """The central test set, held out before partitioning. Two different draws, told apart here:

    - `per_file` False (sources loaded whole): a random `fraction` of all examples,
      `train_idx, test_idx = holdout_split(len(y), fraction, rng)`, drawn from the run's generator
      before the partition;
    - `per_file` True (streamed `files(…)` sources, one client per file): the last `fraction` of each
      client's file, `train_counts = holdout_tails(counts, fraction)`, no random draw.

    One definition (fedlang/constructs/partitions.py `holdout`): the emitter writes `call`, and
    check's replay evaluates the same call (fedlang/check/clients.py)."""

    fraction: float
    per_file: bool

    @property
    def call(self) -> PyCall:
        if self.per_file:
            return PyCall.of("holdout_tails", PyRef("counts"), self.fraction)
        return PyCall.of("holdout_split", PyCall.of("len", PyRef("y")), self.fraction, PyRef("rng"))


@dataclass(frozen=True)
class DataSteps:
    """What `load_data()` does, in order, with literal arguments: the emitter lays the steps out,
    and `check` evaluates the same split call on the replayed labels (fedlang/check/clients.py)."""

    load: tuple["Assign", ...]  # read the examples: binds x, y (client_ids, x_test, y_test; files if streamed)
    streamed: bool  # one client per file, read by tf.data while training:
    stream: "tuple[PyCall, PyCall] | None"  # …(count the examples of `path`, read it): its format's two calls
    test: str  # the central test set: holdout, split (the source's own) or none
    holdout: HoldOut | None  # how the central test set is held out (None: no hold-out)
    scale: str | float | None  # minmax, standard (fitted on the training examples) or a factor
    reshape: tuple[int, ...] | None
    split: PyCall  # indices of each client's examples (fedlang/constructs/partitions.py)
    first: int | None  # keep the first N clients (natural(first = N))
    keeps_client_ids: bool  # client_ids follow the hold-out (the split reads them)
    shuffle: bool
    evaluates: bool
    per_client: float | None = None  # test per_client(f): each client keeps this fraction as its test set
    client_tests: PyCall | None = None  # …by this call after the split (fedlang/constructs/partitions.py)

    @property
    def draws(self) -> bool:
        """Whether a step draws from the run's generator `rng` (load_data() creates it only then)."""
        steps = [s.value for s in self.load] + [self.split, self.client_tests,
                                                 self.holdout.call if self.holdout else None]
        return any(_refers_to(step, "rng") for step in steps)


def _refers_to(value: Any, name: str) -> bool:
    """Whether a plan value (a call, reference, attribute, operation or a container of them) names `name`."""
    if isinstance(value, PyRef):
        return value.name == name
    if is_dataclass(value):
        return any(_refers_to(getattr(value, f.name), name) for f in fields(value))
    if isinstance(value, (list, tuple)):
        return any(_refers_to(v, name) for v in value)
    if isinstance(value, dict):
        return any(_refers_to(v, name) for v in value.values())
    return False


@dataclass(frozen=True)
class Plan:
    source_name: str
    fedlang_version: str
    experiment: str
    model_name: str
    algorithm: str
    data_description: str
    constants: tuple[tuple[str, Any, str | None], ...]  # name, value, where it came from (a comment)
    imports: tuple[str, ...]  # third-party imports of the program's own code (helpers bring theirs)
    helper_modules: tuple[tuple[str, tuple[str, ...]], ...]  # (fedlang/lib module, names copied), in order
    aggregates: tuple[AggregateCode, ...]  # aggregate blocks, as typed Federated Core steps
    attacked: bool  # attackers (clients 0…ATTACKERS-1) take part in every round
    data_steps: DataSteps
    input_shape: tuple[int, ...]
    feature_dtype: str  # of one example's features: float32, or int64 for token ids
    layers: tuple[PyCall, ...]
    loss: PyCall
    metrics: tuple[PyCall, ...]
    element_spec: tuple[PyCall, PyCall]
    binary_labels: bool
    process: PyCall
    aggregator: PyCall | None
    dp_clip: float | None  # fixed DP clip norm (None: adaptive, or no privacy block)
    dp_seeded: bool  # DP noise drawn from SEED
    secure_bounds: bool  # the aggregation block's secure bounds(…)
    robust_name: str | None  # the aggregator named in the aggregation block (library or aggregate block)
    round_block: bool  # a round block's steps are the model aggregator
    quantize_bits: int | None
    dp_accountant: str | None  # rdp or pld when the spec has a privacy block
    secure_aggregation: bool
    communication: dict[str, int]
    sections: dict[str, Section]
    model_weights_type: str
    client_data_type: str
    round_signature: str
    metric_names: tuple[str, ...] = field(default=())
    schedules: dict | None = None  # {"client": schedule tuple or None, "server": …} (fedlang/lib/schedules.py)
    simulation: dict | None = None  # {"expected": …, "columns": …} (fedlang/check/simulation.py)
    monitor: Any = None  # the monitor block's MonitorConfig (checkpoint interval, alerts, its lines)
    skips_nonfinite: bool = False  # on_nonfinite skip: a round with non-finite clients is redone without them
    checks_client_data: bool = True  # train() checks the clients' data before round 1 (lower.checks_client_data)
    personal: dict | None = None  # per-client test sets: federated evaluation, fine-tuning (fedlang/lib/personal.py)
    execution: tuple[str, str] = ("per_client", "")  # the simulation path and why (fedlang/execution.py)
    sparsify: float | None = None  # compress topk(fraction): share of each update tensor's entries sent
    runtime: Any = None  # the RuntimeConfig: one local worker, several, or remote ones (pooled: the pool is copied)


@dataclass(frozen=True)
class Assign:
    """`targets = value` in the emitted program; `targets` is text chosen by the lowering
    (never from the spec), `value` a literal, PyRef or PyCall rendered with `repr`."""

    targets: str
    value: Any
