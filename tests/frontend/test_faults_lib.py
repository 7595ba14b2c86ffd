"""fedlang/lib/faults.py without TensorFlow: the client-data check and the round guard's decisions
(the TFF side, with real processes, is tests/tff/test_run_time_faults.py)."""

from __future__ import annotations

from collections import namedtuple
from types import SimpleNamespace

import numpy as np
import pytest

from fedlang.lib.faults import NonFiniteRound, all_finite, check_client_data, guard_round


ModelWeights = namedtuple("ModelWeights", "trainable non_trainable")  # tff.learning.models.ModelWeights is a NamedTuple


def clients_ok():
    return [(np.ones((3, 2), np.float32), np.array([0, 1, 2])), (np.zeros((2, 2), np.float32), np.array([1, 1]))]


def test_client_data_problems_name_the_client_and_example():
    check_client_data(clients_ok(), None, 3, binary=False)
    bad_x = clients_ok()
    bad_x[1][0][1, 0] = np.inf
    with pytest.raises(ValueError, match=r"^client 1: example 1 has a NaN or infinite feature value"):
        check_client_data(bad_x, None, 3, binary=False)
    with pytest.raises(ValueError, match=r"^client 0: example 2 has a label outside 0…1"):
        check_client_data(clients_ok(), None, 2, binary=False)
    empty = clients_ok() + [(np.zeros((0, 2), np.float32), np.zeros(0, np.int64))]
    with pytest.raises(ValueError, match=r"^client 2 has no examples"):
        check_client_data(empty, None, 3, binary=False)
    test = (np.full((1, 2), np.nan, np.float32), np.array([0]))
    with pytest.raises(ValueError, match=r"^the test set: example 0 has a NaN"):
        check_client_data(clients_ok(), test, 3, binary=False)
    binary = [(np.ones((2, 1), np.float32), np.array([[0.0], [2.0]], np.float32))]
    with pytest.raises(ValueError, match=r"label outside 0…1"):
        check_client_data(binary, None, 1, binary=True)
    for label in (0.5, np.nan, -1.0):  # not a class index
        odd = [(np.ones((2, 1), np.float32), np.array([1.0, label]))]
        with pytest.raises(ValueError, match=r"^client 0: example 1 has a label outside 0…2,.*\(1 such examples\)"):
            check_client_data(odd, None, 3, binary=False)


def test_all_finite_walks_nested_values():
    weights = ModelWeights(trainable=[np.ones(3)], non_trainable=[])
    assert all_finite({"a": [1.0, np.float32(2), 3, True], "w": weights, "name": "x", "none": None})
    assert not all_finite({"a": [1.0, {"b": np.array([0.0, np.nan])}]})
    assert not all_finite(ModelWeights(trainable=[np.array([np.inf])], non_trainable=[]))
    assert not all_finite(ModelWeights(trainable=[], non_trainable=[np.float32(-np.inf)]))


class PoisonedMean:
    """A 'process' whose next state is the mean of the clients' numbers: a client's NaN poisons it."""

    def next(self, state, data):
        value = float(np.mean(data))
        return SimpleNamespace(state=value, metrics={"client_work": {"train": {"loss": value}}})

    def get_model_weights(self, state):
        return ModelWeights(trainable=[np.array([state])], non_trainable=[])


class DroppingMean(PoisonedMean):
    """Like TFF's FedAvg: a client's NaN update gets weight 0 and its metrics are reset, silently."""

    def next(self, state, data):
        kept = [d for d in data if np.isfinite(d)]
        value = float(np.mean(kept)) if kept else state
        return SimpleNamespace(state=value, metrics={"client_work": {"train": {"loss": value,
                                                                               "num_examples": len(kept)}}})


@pytest.mark.parametrize("process", [PoisonedMean(), DroppingMean()], ids=["poisoned", "silently_dropped"])
def test_guard_round_stops_or_skips_the_non_finite_clients(process):
    messages = []
    data, sampled, expected = [1.0, np.nan, 3.0], np.array([4, 7, 9]), [1, 1, 1]
    fine = process.next(0.0, [1.0, 3.0])
    assert guard_round(process, 0.0, fine, [1.0, 3.0], np.array([4, 9]), [1, 1], 1, "stop", messages.append) == (fine, [])
    suspect = process.next(0.0, data)
    with pytest.raises(NonFiniteRound, match=r"round 2: the update of client 7 is not finite .*on_nonfinite stop"):
        guard_round(process, 0.0, suspect, data, sampled, expected, 2, "stop", messages.append)
    redone, skipped = guard_round(process, 0.0, suspect, data, sampled, expected, 2, "skip", messages.append)
    assert skipped == [7] and redone.state == 2.0
    assert messages == ["warning: round 2: skipped client 7: its update is not finite (NaN or inf)"]
    with pytest.raises(NonFiniteRound, match="update of client 4, 7"):  # nobody left: stop even when skipping
        guard_round(process, 0.0, process.next(0.0, [np.nan, np.nan]), [np.nan, np.nan], np.array([4, 7]), [1, 1],
                    3, "skip", messages.append)


class StateHeldWeights(PoisonedMean):
    """Like TFF's composed learning processes: the state holds `global_model_weights`; asking
    the process for them (a TFF computation, one call to the worker) is not needed."""

    def next(self, state, data):
        value = float(np.mean(data))
        weights = ModelWeights(trainable=[np.array([value])], non_trainable=[])
        return SimpleNamespace(state=SimpleNamespace(global_model_weights=weights),
                               metrics={"client_work": {"train": {"loss": 0.0}}})

    def get_model_weights(self, state):
        raise AssertionError("guard_round asked the process for weights that the state holds")


def test_guard_round_reads_the_model_weights_the_state_holds():
    process = StateHeldWeights()
    fine = process.next(None, [1.0, 3.0])
    assert guard_round(process, None, fine, [1.0, 3.0], np.array([4, 9]), [1, 1], 1, "stop", print) == (fine, [])
    suspect = process.next(None, [1.0, np.nan])  # the model is NaN, though the metrics are finite
    with pytest.raises(NonFiniteRound, match="update of client 7 is not finite"):
        guard_round(process, None, suspect, [1.0, np.nan], np.array([4, 7]), [1, 1], 2, "stop", print)


class OverflowingSum(PoisonedMean):
    """Each client alone is finite, together they overflow: nobody to name, and the round still stops."""

    def next(self, state, data):
        with np.errstate(over="ignore"):
            value = float(np.sum(np.array(data, np.float32)))
        return SimpleNamespace(state=value, metrics={"client_work": {"train": {"loss": 0.0}}})


def test_guard_round_stops_a_non_finite_aggregate_without_a_culprit():
    process, data = OverflowingSum(), [3e38, 3e38]
    with pytest.raises(NonFiniteRound, match=r"round 4: the aggregated model \(no single client's update\) is not finite"):
        guard_round(process, 0.0, process.next(0.0, data), data, np.array([0, 1]), [1, 1], 4, "skip", print)


class WorkerExitedError(RuntimeError):
    """Named as fedlang/lib/tff_worker.py's (faults.py matches the class by name: it cannot import it)."""


class DyingWorker(PoisonedMean):
    """The round is suspect; rerunning a client alone finds the worker gone."""

    def next(self, state, data):
        if len(data) == 1:
            raise WorkerExitedError("the TFF worker_binary (pid 1) was killed by SIGKILL")
        return super().next(state, data)


def test_guard_round_does_not_read_a_dead_worker_as_a_nan_round():
    process, data = DyingWorker(), [1.0, np.nan]
    with pytest.raises(WorkerExitedError, match="killed by SIGKILL"):
        guard_round(process, 0.0, process.next(0.0, data), data, np.array([0, 1]), [1, 1], 1, "stop", print)
