"""Run-time faults: client data that cannot train the model, and rounds whose updates are NaN/inf.

Copied verbatim into emitted programs (NumPy only; the TFF process is passed in), so `fedlang
run` and the standalone program detect the same faults the same way.

``REQUIRES`` at the bottom maps each function to the helpers of this module it calls.
"""

import numpy as np


class NonFiniteRound(RuntimeError):
    """A round whose model or metrics would not be finite (NaN/inf); the run stops before applying it."""


def check_client_data(clients, test, num_outputs, binary):
    """Before round 1: a ValueError naming the first client (or the test set) that has no examples, a
    NaN/inf feature or a label outside the model's classes; it describes the data without quoting it."""
    top = 1 if binary else num_outputs - 1
    named = [(f"client {i}", c) for i, c in enumerate(clients)] + ([("the test set", test)] if test is not None else [])
    for name, (x, y) in named:
        if len(y) == 0:
            raise ValueError(f"{name} has no examples; every client needs at least one "
                             "(use fewer clients, or min_examples in a dirichlet partition)")
        bad_x = ~np.isfinite(x).reshape(len(x), -1).all(axis=1)
        bad_y = ~np.isin(np.reshape(y, (len(y), -1))[:, 0], np.arange(top + 1))
        if bad_x.any():
            raise ValueError(f"{name}: example {np.argmax(bad_x)} has a NaN or infinite feature value "
                             f"({bad_x.sum()} such examples); clean or rescale the data")
        if bad_y.any():
            raise ValueError(f"{name}: example {np.argmax(bad_y)} has a label outside 0…{top}, the classes "
                             f"of the model's {num_outputs}-unit output ({bad_y.sum()} such examples)")


def all_finite(value):
    """True when every number in `value` (nested dicts, lists, tuples such as ModelWeights, arrays) is finite."""
    if isinstance(value, (dict, list, tuple)):
        return all(map(all_finite, value.values() if isinstance(value, dict) else value))
    array = np.asarray(value)
    return array.dtype.kind not in "fc" or bool(np.isfinite(array).all())


def guard_round(process, state, result, round_data, sampled, expected, round_num, on_nonfinite, status):
    """A round whose model or metrics are not finite, or that counts fewer examples than `expected`, is rerun
    client by client to name the culprits; then it stops (NonFiniteRound) or skips them. -> (result, skipped)"""
    def finite(r):  # TFF's learning processes hold the model in their state (no call to the worker)
        weights = getattr(r.state, "global_model_weights", None) or process.get_model_weights(r.state)
        return all_finite([weights, r.metrics["client_work"]])

    def counted(r):  # TFF zeroes a NaN client's update and resets its metrics, silently: count examples
        return r.metrics["client_work"]["train"].get("num_examples", np.inf)  # inf: the process counts none

    if finite(result) and counted(result) >= sum(expected):
        return result, []
    culprits = []
    for client, data, wanted in zip(sampled, round_data, expected):
        try:
            alone = process.next(state, [data])
        except Exception as exc:  # noqa: BLE001 - e.g. an aggregator that needs more clients: cannot tell
            if type(exc).__name__ in ("WorkerExitedError", "WorkerUnreachableError"):  # lib/tff_worker.py
                raise  # a dead worker, not a NaN
            continue
        if not finite(alone) or counted(alone) == 0 < wanted:
            culprits.append(int(client))
    if not culprits and finite(result):
        return result, []  # fewer examples counted for another reason: nothing to protect
    named = ", ".join(map(str, culprits))
    kept = [d for c, d in zip(sampled, round_data) if int(c) not in culprits] if on_nonfinite == "skip" else []
    if culprits and kept and finite(redone := process.next(state, kept)):
        status(f"warning: round {round_num}: skipped client {named}: its update is not finite (NaN or inf)")
        return redone, culprits
    problem = f"the update of client {named}" if culprits else "the aggregated model (no single client's update)"
    raise NonFiniteRound(f"round {round_num}: {problem} is not finite (NaN or inf); "
                         f"stopped before applying the round (on_nonfinite {on_nonfinite})")


REQUIRES: dict[str, tuple[str, ...]] = {
    "NonFiniteRound": (),
    "check_client_data": (),
    "all_finite": (),
    "guard_round": ("all_finite", "NonFiniteRound"),
}
