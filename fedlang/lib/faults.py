"""Run-time faults: client data that cannot train the model, and rounds whose updates are NaN/inf.

Copied verbatim into emitted programs (NumPy only; the TFF process is passed in), so `fedlang
run` and the standalone program detect the same faults the same way.

``REQUIRES`` at the bottom maps each function to the helpers of this module it calls.
"""

import numpy as np


class NonFiniteRound(RuntimeError):
    """A round whose model or metrics would not be finite; the run stops before applying it."""


def check_client_data(clients, test, num_outputs, binary):
    """Before round 1: raise ValueError naming the first client (or the test set) whose examples
    cannot train a model with `num_outputs` output units (no examples, NaN/inf features, labels
    outside its classes). Describes the problem without quoting the data."""
    top = 1 if binary else num_outputs - 1
    parts = [(f"client {i}", x, y) for i, (x, y) in enumerate(clients)]
    if test is not None:
        parts.append(("the test set", test[0], test[1]))
    for name, x, y in parts:
        if len(y) == 0:
            raise ValueError(f"{name} has no examples; every client needs at least one "
                             f"(use fewer clients, or min_examples in a dirichlet partition)")
        finite = np.isfinite(x).reshape(len(x), -1).all(axis=1)
        if not finite.all():
            raise ValueError(f"{name}: example {int(np.argmin(finite))} has a NaN or infinite feature value "
                             f"({int((~finite).sum())} such examples); clean or rescale the data")
        labels = np.asarray(y).reshape(len(y), -1)[:, 0]
        bad = ~np.isfinite(labels) | (labels < 0) | (labels > top) | (labels != np.round(labels))
        if bad.any():
            raise ValueError(f"{name}: example {int(np.argmax(bad))} has a label outside 0…{top}, the classes "
                             f"of the model's {num_outputs}-unit output ({int(bad.sum())} such examples)")


def all_finite(value):
    """True when every number in `value` (nested dicts, lists, tuples, arrays, ModelWeights) is finite."""
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if hasattr(value, "trainable") and hasattr(value, "non_trainable"):
        return all_finite(list(value.trainable)) and all_finite(list(value.non_trainable))
    if isinstance(value, (list, tuple)):
        return all(all_finite(v) for v in value)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return True  # not a number (a string, a name): nothing to check
    return bool(np.isfinite(array).all())


def _model_weights(process, state):
    """The model weights in a round's state. TFF's learning processes keep them in the state as
    `global_model_weights` (what their get_model_weights computation returns); reading them there
    saves a call to the TFF worker each round. Other processes: their get_model_weights."""
    weights = getattr(state, "global_model_weights", None)
    if hasattr(weights, "trainable") and hasattr(weights, "non_trainable"):
        return weights
    return process.get_model_weights(state)


def _examples(result):
    """Examples the round's training metrics count (TFF resets a client's metrics when it drops
    its non-finite update), or None when the process reports no count."""
    train = result.metrics.get("client_work", {}).get("train", {})
    return int(train["num_examples"]) if "num_examples" in train else None


def guard_round(process, state, result, round_data, sampled, expected, round_num, on_nonfinite, status):
    """Check a round for clients whose local training went NaN/inf. TFF's FedAvg/FedProx zero such
    a client's update (weight 0) and reset its metrics, silently; so a round is suspect when its
    model or metrics are not finite, or when its metrics count fewer examples than `expected`
    (per sampled client). Then each sampled client is run alone from the round's start `state`
    to name the culprits: with on_nonfinite "stop" the run stops before applying the round
    (NonFiniteRound); with "skip" the round is redone without them. Returns (result, skipped ids)."""
    def finite(r):
        return all_finite(_model_weights(process, r.state)) and all_finite(r.metrics["client_work"])

    counted = _examples(result)
    if finite(result) and (counted is None or counted >= sum(expected)):
        return result, []
    culprits = []
    for client, data, wanted in zip(sampled, round_data, expected):
        try:
            alone = process.next(state, [data])
        except Exception:  # noqa: BLE001 - an aggregator that needs more clients: cannot tell
            continue
        alone_counted = _examples(alone)
        if not finite(alone) or alone_counted == 0 < wanted:  # TFF resets a dropped client's metrics
            culprits.append(int(client))
    if not culprits:
        if finite(result):
            return result, []  # fewer examples counted for another reason: nothing to protect
        raise NonFiniteRound(f"round {round_num}: the aggregated model is not finite (NaN or inf), though no "
                             f"single client's update is; stopped before applying the round")
    named = ", ".join(str(c) for c in culprits)
    if on_nonfinite == "skip":
        kept = [d for c, d in zip(sampled, round_data) if int(c) not in culprits]
        if kept:
            redone = process.next(state, kept)
            if finite(redone):
                status(f"warning: round {round_num}: skipped client {named}: its update is not finite (NaN or inf)")
                return redone, culprits
    raise NonFiniteRound(f"round {round_num}: the update of client {named} is not finite (NaN or inf); "
                         f"stopped before applying the round (on_nonfinite {on_nonfinite})")


REQUIRES: dict[str, tuple[str, ...]] = {
    "NonFiniteRound": (),
    "check_client_data": (),
    "all_finite": (),
    "_examples": (),
    "_model_weights": (),
    "guard_round": ("all_finite", "_model_weights", "_examples", "NonFiniteRound"),
}
