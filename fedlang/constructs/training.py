"""Optimizers and library aggregators: one definition object each, with every hook it needs.

- `OptimizerDef`: its form (per side: client or server) and `build(options)`, the TFF optimizer
  builder call (the learning rate already a number: a schedule's round-1 rate);
- `AggregatorDef`: its form, the fedlang/lib/federated.py factory it lowers to (copied into the
  program), `gathers` (it needs every client's update at the server, so no secure sum) and
  `build(choice)`, the factory call.

`tests/frontend/test_registry_complete.py` checks every one lowers to a real builder or factory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..forms import Form, Param, forms
from ..plan import PyCall


@dataclass(frozen=True)
class OptimizerDef:
    form: Form
    build: Callable[[dict[str, Any]], PyCall]

    @property
    def name(self) -> str:
        return self.form.name


def _tff_optimizer(name: str) -> Callable[[dict[str, Any]], PyCall]:
    return lambda options: PyCall.of(f"tff.learning.optimizers.build_{name}", **options)


def _sgdm(options: dict[str, Any]) -> PyCall:
    momentum = options.get("momentum")
    return PyCall.of("tff.learning.optimizers.build_sgdm", learning_rate=options["learning_rate"],
                     **({"momentum": momentum} if momentum else {}))


_lr = Param("learning_rate", "rate", low=0, low_open=True, doc="step size, e.g. 0.01, or a schedule over rounds")


def _optional_lr(default: float) -> Param:
    return Param("learning_rate", "rate", default=default, low=0, low_open=True,
                 doc=f"step size (default {default:g}), or a schedule over rounds")


_beta1 = Param("beta_1", "float", default=0.9, low=0, high=1, high_open=True, doc="decay of the first moment")
_beta2 = Param("beta_2", "float", default=0.999, low=0, high=1, high_open=True, doc="decay of the second moment")
_momentum = Param("momentum", "float", default=0.0, low=0, high=1, high_open=True, doc="0 = plain SGD, e.g. 0.9")

CLIENT_OPTIMIZER_DEFS: tuple[OptimizerDef, ...] = (
    OptimizerDef(Form("sgd", (_lr, _momentum), doc="SGD, optionally with momentum",
                      example="client_optimizer sgd(learning_rate = 0.05)"), _sgdm),
    OptimizerDef(Form("adam", (_optional_lr(0.001), _beta1, _beta2,
                               Param("epsilon", "float", default=1e-7, low=0, low_open=True)),
                      doc="Adam", example="client_optimizer adam(learning_rate = 0.001)"), _tff_optimizer("adam")),
)

SERVER_OPTIMIZER_DEFS: tuple[OptimizerDef, ...] = (
    OptimizerDef(Form("sgd", (_optional_lr(1.0), _momentum), doc="SGD on the averaged update; momentum > 0 is FedAvgM",
                      example="server_optimizer sgd(learning_rate = 1.0, momentum = 0.9)"), _sgdm),
    OptimizerDef(Form("adam", (_optional_lr(0.01), _beta1, _beta2,
                               Param("epsilon", "float", default=1e-3, low=0, low_open=True)),
                      doc="FedAdam", example="server_optimizer adam(learning_rate = 0.01)"), _tff_optimizer("adam")),
    OptimizerDef(Form("yogi", (_optional_lr(0.01), _beta1, _beta2,
                               Param("epsilon", "float", default=1e-3, low=0, low_open=True),
                               Param("initial_preconditioner_value", "float", default=1e-6, low=0, low_open=True)),
                      doc="FedYogi", example="server_optimizer yogi(learning_rate = 0.01)"), _tff_optimizer("yogi")),
    OptimizerDef(Form("adagrad", (_optional_lr(0.01),
                                  Param("initial_preconditioner_value", "float", default=0.1, low=0),
                                  Param("epsilon", "float", default=1e-7, low=0, low_open=True)),
                      doc="FedAdagrad", example="server_optimizer adagrad(learning_rate = 0.01)"),
                 _tff_optimizer("adagrad")),
)

OPTIMIZER_BY_SIDE: dict[str, dict[str, OptimizerDef]] = {
    "client": {d.name: d for d in CLIENT_OPTIMIZER_DEFS}, "server": {d.name: d for d in SERVER_OPTIMIZER_DEFS}}
CLIENT_OPTIMIZERS = forms(*(d.form for d in CLIENT_OPTIMIZER_DEFS))
SERVER_OPTIMIZERS = forms(*(d.form for d in SERVER_OPTIMIZER_DEFS))


@dataclass(frozen=True)
class AggregatorDef:
    form: Form
    factory: str  # the fedlang/lib/federated.py factory the program copies and calls
    gathers: bool  # needs every client's update at the server (cannot run behind a secure sum)

    @property
    def name(self) -> str:
        return self.form.name

    def build(self, options: dict[str, Any]) -> PyCall:
        return PyCall.of(self.factory, **options)


_BYZANTINE = Param("byzantine", "int", default=1, low=0, doc="Byzantine clients tolerated (f)")

# Library aggregators (fedlang/lib/federated.py); an `aggregate` block's name is accepted too.
AGGREGATOR_DEFS: tuple[AggregatorDef, ...] = (
    AggregatorDef(Form("trimmed_mean", (Param("fraction", "float", default=0.1, low=0, high=0.5, high_open=True,
                                              doc="share of values trimmed at each end, per coordinate"),),
                       doc="coordinate-wise trimmed mean of the client updates",
                       example="aggregator trimmed_mean(fraction = 0.1)"), "TrimmedMeanFactory", gathers=True),
    AggregatorDef(Form("median", (), doc="coordinate-wise median of the client updates", example="aggregator median"),
                  "MedianFactory", gathers=True),
    AggregatorDef(Form("norm_clipped_mean", (Param("clip", "float", low=0, low_open=True, doc="L2 norm bound"),),
                       doc="mean of updates clipped to an L2 norm", example="aggregator norm_clipped_mean(clip = 1.0)"),
                  "NormClippedMeanFactory", gathers=False),
    AggregatorDef(Form("zeroing_mean", (Param("threshold", "float", low=0, low_open=True, doc="L2 norm bound"),),
                       doc="mean in which updates with a larger norm count as zero",
                       example="aggregator zeroing_mean(threshold = 5)"), "ZeroingMeanFactory", gathers=False),
    AggregatorDef(Form("krum", (_BYZANTINE,), doc="Krum (Blanchard et al. 2017): the update closest to its n − f − 2 "
                                                  "neighbours", example="aggregator krum(byzantine = 1)"),
                  "KrumFactory", gathers=True),
    AggregatorDef(Form("multi_krum", (_BYZANTINE, Param("m", "int", low=1, doc="updates averaged")),
                       doc="Multi-Krum: the mean of the m best-scored updates",
                       example="aggregator multi_krum(byzantine = 1, m = 5)"), "MultiKrumFactory", gathers=True),
)

AGGREGATOR_BY_NAME: dict[str, AggregatorDef] = {d.name: d for d in AGGREGATOR_DEFS}
ROBUST_AGGREGATORS = forms(*(d.form for d in AGGREGATOR_DEFS))
GATHERING_AGGREGATORS = tuple(d.name for d in AGGREGATOR_DEFS if d.gathers)
