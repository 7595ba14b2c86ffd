"""Which simulation path a spec runs on (decided without TensorFlow).

- **fused**: the round's sampled clients are trained back to back inside one TFF client
  computation per group of clients (fedlang/lib/fused.py): TFF's per-client executor overhead
  is paid once per group instead of once per client. Same numbers as the per-client path to float
  rounding (tests/tff/test_fused.py).
- **per_client**: TFF's own learning process (`build_weighted_fed_avg`, …), one TFF client
  computation per sampled client.

`execution auto` (the default) takes the fused path whenever the spec allows it; `execution
per_client` forces TFF's own process; `execution fused` requires the fused path (E640 when the
spec needs per-client values). A feature that needs each client's own TFF value (its update, its
RNG draws) adds its reason to `fused_blocker`.
"""

from __future__ import annotations

from .checked import CheckedSpec
from .constructs.sources import SOURCE_BY_NAME

# Groups of clients per round on the fused path: one TFF client computation each
# (bench/simulation_speed.py measured 1 and 2 groups on 2 cores; see README).
FUSED_GROUPS = 1


def fused_blocker(checked: CheckedSpec) -> str | None:
    """Why the fused path cannot run this spec, or None when it can."""
    aggregation = checked.aggregation
    if checked.privacy is not None:
        return "the privacy block clips and adds noise to each client's update in TFF's aggregator"
    if aggregation is not None and aggregation.secure is not None:
        return "secure aggregation sums each client's update in TFF's aggregator"
    if checked.round is not None:
        return "the round block needs each client's update"
    if aggregation is not None and aggregation.aggregator is not None:
        return f"aggregator '{aggregation.aggregator.name}' needs each client's update"
    if aggregation is not None and aggregation.quantize_bits is not None:
        return "compression quantizes each client's update"
    if aggregation is not None and aggregation.sparsify is not None:
        return "compression sparsifies each client's update (top-k)"
    if checked.attack is not None:
        return "the attack block scales chosen clients' updates"
    if checked.model.has_local_layers:
        return "layers marked `local` keep each client's own weights (FedPer)"
    if checked.personalize is not None or checked.data.per_client_test is not None:
        return "personalization evaluates and fine-tunes each client on its own test data"
    if SOURCE_BY_NAME[checked.data.source.name].streamed:
        return "the source streams each client's examples from its own file"
    if any(layer.kind == "dropout" for layer in checked.model.layers):
        return ("the model has dropout, whose masks TFF draws afresh in every client computation: "
                "fused clients would draw other masks")
    return None


def execution_path(checked: CheckedSpec) -> tuple[str, str]:
    """("fused" | "per_client", why) for a checked spec."""
    setting = checked.train.execution
    if setting == "per_client":
        return "per_client", "`execution per_client` in the train block"
    blocker = fused_blocker(checked)
    if blocker is not None:  # `execution fused` with a blocker is error E640
        return "per_client", blocker
    how = "`execution fused`" if setting == "fused" else "auto"
    return "fused", f"{how}: the round's clients train back to back in one TFF client computation"
