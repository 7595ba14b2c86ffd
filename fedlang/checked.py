"""The checked spec: what the check passes hand to the lowering.

Every value here has been validated and defaulted; nothing refers to syntax any more except
`lines`, the source lines each part came from (used to comment the emitted program).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from .constructs.layers import LAYER_BY_NAME
from .diagnostics import Span


@dataclass(frozen=True)
class Choice:
    """A resolved form: `dirichlet(alpha = 0.5, clients = 100)` → name + every option's value."""

    name: str
    args: Mapping[str, Any]
    span: Span

    def __getitem__(self, key: str) -> Any:
        return self.args[key]

    def text(self) -> str:
        if not self.args:
            return self.name
        inner = ", ".join(f"{k}={v.text() if isinstance(v, Choice) else repr(v)}"
                          for k, v in self.args.items() if v is not None)
        return f"{self.name}({inner})"


@dataclass(frozen=True)
class LayerConfig:
    kind: str
    args: Mapping[str, Any]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    line: int
    local: Span | None = None  # where `local` marks it: its weights stay on each client (FedPer)


@dataclass(frozen=True)
class ModelConfig:
    name: str
    input_shape: tuple[int, ...]
    layers: tuple[LayerConfig, ...]
    loss: str
    from_logits: bool
    metrics: tuple[str, ...]
    lines: tuple[int, int]

    @property
    def param_count(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def weight_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Shapes of the trainable variables in Keras order (kernel then bias per layer)."""
        shapes: list[tuple[int, ...]] = []
        for layer in self.layers:
            shapes.extend(layer_weight_shapes(layer))
        return tuple(shapes)

    @property
    def non_trainable_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Shapes of the non-trainable variables (batch_norm's moving statistics), in Keras order."""
        return tuple(s for layer in self.layers
                     for s in LAYER_BY_NAME[layer.kind].non_trainable(layer.args, layer.input_shape))

    @property
    def local_mask(self) -> tuple[bool, ...]:
        """Per trainable variable (Keras order): does it belong to a `local` layer?"""
        return tuple(layer.local is not None for layer in self.layers for _ in layer_weight_shapes(layer))

    @property
    def has_local_layers(self) -> bool:
        return any(layer.local is not None for layer in self.layers)

    @property
    def feature_dtype(self) -> str:
        """The dtype of one example's features: what the first layer reads (float32 or int64)."""
        return LAYER_BY_NAME[self.layers[0].kind].input_dtype if self.layers else "float32"

    @property
    def output_units(self) -> int:
        return self.layers[-1].output_shape[-1] if self.layers else math.prod(self.input_shape)


def layer_weight_shapes(layer: LayerConfig) -> list[tuple[int, ...]]:
    """Shapes of one layer's trainable variables (its definition's `weights` hook)."""
    return LAYER_BY_NAME[layer.kind].weights(layer.args, layer.input_shape)


@dataclass(frozen=True)
class DatasetFacts:
    """What is known about the data before loading it (exact for bundled sets and files)."""

    examples: int | None  # None: only known after generating (synthetic)
    feature_shape: tuple[int, ...]
    classes: int
    natural_clients: int | None  # clients the source defines itself, if any
    description: str
    tokens: int | None = None  # the features are integer token ids 0 … tokens−1 (None: real values)
    stored: str | None = None  # streamed files: how they store the features ("float" or "int64")
    file_format: str | None = None  # streamed files: their one extension (".csv", ".npz" or ".tfrecord")


@dataclass(frozen=True)
class DataConfig:
    name: str
    source: Choice
    partition: Choice
    test: Choice
    scale: str | float | None
    reshape: tuple[int, ...] | None
    batch: int
    shuffle: int
    facts: DatasetFacts
    num_clients: int
    lines: tuple[int, int]
    path: str | None = None  # data file as the emitted program opens it (relative to the cwd)
    client_sizes: tuple[int, ...] | None = None  # training examples per client, as the run draws them
    client_test_sizes: tuple[int, ...] | None = None  # test per_client: each client's own test examples

    @property
    def per_client_test(self) -> float | None:
        """The fraction of its examples each client keeps for testing (None: no per-client test sets)."""
        return self.test["fraction"] if self.test.name == "per_client" else None

    @property
    def central_test(self) -> bool:
        """A central held-out test set exists (holdout, split, or per_client with holdout > 0)."""
        return self.test.name in ("holdout", "split") or (self.test.name == "per_client" and self.test["holdout"] > 0)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return self.reshape or self.facts.feature_shape


@dataclass(frozen=True)
class TrainConfig:
    algorithm: str
    rounds: int
    clients_per_round: int
    local_epochs: int
    client_optimizer: Choice
    server_optimizer: Choice
    weighting: str
    mu: float | None
    lines: tuple[int, int]
    on_nonfinite: str = "stop"  # or "skip": what a round does with a client's NaN/inf update
    execution: str = "auto"  # auto | fused | per_client (fedlang/execution.py)


@dataclass(frozen=True)
class EvaluateConfig:
    every: int
    lines: tuple[int, int] | None
    clients: int | None = None  # federated evaluation: clients sampled each time (None: all)


@dataclass(frozen=True)
class PrivacyConfig:
    """User-level DP: Gaussian noise on clipped client updates, accounted over the rounds."""

    noise_multiplier: float  # solved already when the spec said `noise auto`
    noise_solved: bool
    clip: float | None  # fixed clip norm, or None for adaptive clipping
    adaptive: Choice | None
    epsilon_target: float | None
    delta: float
    population: int
    sampling_rate: float  # clients_per_round / population (accounted as Poisson sampling)
    accountant: str
    on_exceed: str
    epsilon: float  # after the configured rounds
    last_round_within: int | None  # last round with ε ≤ target (None: no target)
    rounds_to_run: int  # rounds after the budget policy
    lines: tuple[int, int]
    seeded_noise: bool = False  # noise from (SEED, round counter) instead of a fresh seed per run


@dataclass(frozen=True)
class AggregationConfig:
    secure: tuple[float, float] | None  # (lower, upper) bounds of the secure sum
    quantize_bits: int | None
    quantize_threshold: int
    lines: tuple[int, int]
    aggregator: Choice | None = None  # a library aggregator, or an `aggregate` block (no args)
    sparsify: float | None = None  # compress topk(fraction): share of each tensor's entries sent


# ---------------------------------------------------------------- aggregate and round blocks


@dataclass(frozen=True)
class FedType:
    """A placed float32 tensor type; `dims` may contain "*" (model size) and "?" (clients)."""

    dims: tuple[int | str, ...]
    placement: str

    def notation(self, model_dim: int | None = None) -> str:
        """TFF's notation: `{float32[7850]}@CLIENTS`, `float32[?,7850]@SERVER`."""
        dims = ",".join(str(model_dim) if d == "*" and model_dim else str(d) for d in self.dims)
        tensor = f"float32[{dims}]" if self.dims else "float32"
        return f"{{{tensor}}}@CLIENTS" if self.placement == "CLIENTS" else f"{tensor}@SERVER"


@dataclass(frozen=True)
class TypedStep:
    """One checked step: `target` (None for return) = operator(operands, options)."""

    target: str | None
    operator: str
    operands: tuple[str, ...]
    options: dict[str, Any]
    type: FedType
    line: int
    source: str


@dataclass(frozen=True)
class AggregateConfig:
    name: str
    param: str
    steps: tuple[TypedStep, ...]
    lines: tuple[int, int]
    helpers: tuple[str, ...] = field(default=())  # fedlang.lib.federated names the lowering uses
    helpers_called: tuple[str, ...] = field(default=())  # other aggregate blocks its steps call


@dataclass(frozen=True)
class RoundConfig:
    """A `round` block: FedAvg's broadcast, local training and server update (its frame) around
    aggregation steps, which run as the model aggregator. Not an aggregate block: no user name
    refers to it (`aggregate round` is E910), and the back end tells it apart by type, not name."""

    aggregate: AggregateConfig  # the aggregation steps: the local updates in, the model delta out
    frame: tuple[tuple[int, str, FedType], ...]  # the fixed steps: (line, name, type)
    lines: tuple[int, int]


@dataclass(frozen=True)
class AttackConfig:
    clients: int
    scale: float
    lines: tuple[int, int]


@dataclass(frozen=True)
class SimulationConfig:
    """Simulated client conditions; `config` is the dict fedlang/lib/simulation.py reads."""

    available: Choice
    config: Mapping[str, Any]  # seed, forms as tuples; a trace as ("trace", path)
    trace_path: str | None  # the trace file as the emitted program opens it
    selection_probability: float | None  # P(a client is selected in a round), for DP; None: unknown
    lines: tuple[int, int]

    @property
    def changes_steps(self) -> bool:
        """Some clients may run fewer local steps than local_epochs (partial work, caps)."""
        c = self.config
        return bool(c["max_steps"] or c["full_epochs_at"] or
                    (c["stragglers"] == "partial" and (c["deadline"] is not None or c["straggler_fraction"])))


@dataclass(frozen=True)
class MonitorConfig:
    """A monitor block: checkpoint interval and alerts (dicts read by fedlang/lib/monitor.py's Monitor)."""

    checkpoint_every: int = 10
    alerts: tuple[dict, ...] = ()
    source_lines: tuple[tuple[int, str], ...] = field(default=())  # (line number, text) of the block
    # `checkpoint every k` written: the standalone program checkpoints and resumes too (`fedlang run` always does)
    declares_checkpoints: bool = False

    @property
    def resumable(self) -> bool:
        """The standalone program checkpoints: `checkpoint every k`, or an alert whose action is `checkpoint`."""
        return self.declares_checkpoints or any(a["action"] == "checkpoint" for a in self.alerts)


@dataclass(frozen=True)
class CheckedSpec:
    source_name: str
    experiment: str
    seed: int
    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    evaluate: EvaluateConfig | None
    warnings: tuple = field(default=())
    privacy: PrivacyConfig | None = None
    aggregation: AggregationConfig | None = None
    aggregates: dict = field(default_factory=dict)  # name -> AggregateConfig, the spec's aggregate blocks
    attack: AttackConfig | None = None
    simulation: SimulationConfig | None = None
    monitor: MonitorConfig | None = None  # None without a monitor block
    personalize: "PersonalizeConfig | None" = None  # None without a personalize block
    round: RoundConfig | None = None  # None without a round block
    runtime: "RuntimeConfig | None" = None  # None without a runtime block (one local worker)

    @property
    def step_aggregate(self) -> AggregateConfig | None:
        """The Federated Core steps that run as the model aggregator: the round block's, or the
        aggregate block named by `aggregator` (None: TFF's mean or a library aggregator)."""
        if self.round is not None:
            return self.round.aggregate
        choice = self.aggregation.aggregator if self.aggregation else None
        return self.aggregates.get(choice.name) if choice is not None else None

    @property
    def all_aggregates(self) -> tuple[AggregateConfig, ...]:
        """Every block of steps the program defines: the aggregate blocks, then the round's."""
        return tuple(self.aggregates.values()) + ((self.round.aggregate,) if self.round is not None else ())


@dataclass(frozen=True)
class RuntimeConfig:
    """Where the rounds run: `workers` local TFF workers, or the running ones at `remote`."""

    workers: int = 1
    remote: tuple[str, ...] = ()  # "HOST:PORT" of running workers (then workers is 1)
    timeout: float = 600.0  # seconds a worker may take to answer one call
    lines: tuple[int, int] | None = None  # the runtime block's lines (None: from the command line)

    @property
    def pooled(self) -> bool:
        """More than one local worker, or remote ones: the program needs the worker pool."""
        return self.workers > 1 or bool(self.remote)


@dataclass(frozen=True)
class PersonalizeConfig:
    """Local fine-tuning of the global model on each client's training data, evaluated on its own test set."""

    epochs: int
    optimizer: Choice  # sgd or adam, plain learning rates
    batch: int  # the data's batch unless the block sets one
    every: int | None  # also fine-tune at the federated evaluations of every k-th round (None: only at the end)
    lines: tuple[int, int]
