"""DP, secure aggregation and compression as lowered by fedlang, checked on TFF's runtime.

The aggregators come from the emitted program's own `build_aggregator()`, so these tests check
what `fedlang run` and the emitted code really use.
"""

import json

import numpy as np
import pytest

from .support import REPO, assert_no_worker_left, compile_text, load_program, read_jsonl, run_fedlang

pytestmark = pytest.mark.tff

BASE = """
experiment "agg"
seed 3
model m {
  input [64]
  dense 10 softmax
  loss sparse_categorical_crossentropy
  metrics [accuracy]
}
data {
  source sklearn.digits
  scale minmax
  partition iid(clients = 40)
  test holdout(0.2)
}
train fedavg {
  rounds ROUNDS clients_per_round 20 TRAIN_EXTRA
  client_optimizer sgd(learning_rate = 0.1)
}
evaluate { every 1 }
"""


def spec(extra_blocks: str = "", rounds: int = 3, train_extra: str = "") -> str:
    return BASE.replace("ROUNDS", str(rounds)).replace("TRAIN_EXTRA", train_extra) + extra_blocks


@pytest.fixture
def secure_worker():
    from fedlang.lib.tff_worker import simulate_secure_sums, use_local_tff_worker

    worker = use_local_tff_worker(transform=simulate_secure_sums)
    yield worker
    worker.close()


def _aggregation_process(text: str, dim: int):
    import tensorflow_federated as tff

    program = load_program(compile_text(text))
    factory = program["build_aggregator"]()
    return factory.create(tff.TensorType(np.float32, [dim]))


def _noise(text: str, dim: int, clients: int, rounds: int) -> np.ndarray:
    """What the DP aggregator returns, round after round, for all-zero client updates: its noise."""
    process = _aggregation_process(text, dim)
    state = process.initialize()
    outputs = []
    for _ in range(rounds):
        result = process.next(state, [np.zeros(dim, np.float32)] * clients)
        state = result.state
        outputs.append(np.asarray(result.result))
    return np.stack(outputs)


@pytest.mark.parametrize("seeded", ["", "seeded_noise true"])
def test_dp_noise_is_really_added(secure_worker, seeded):
    """Zero updates in, Gaussian noise out: std = z·clip / clients_per_round per coordinate."""
    text = spec(f"privacy {{ noise 2.0 clip 1.0 epsilon 1000 delta 1e-5 {seeded} }}")
    dim, clients, rounds = 200, 20, 30
    values = _noise(text, dim, clients, rounds).ravel()
    expected_std = 2.0 * 1.0 / clients
    assert abs(values.mean()) < 4 * expected_std / np.sqrt(values.size)
    assert values.std() == pytest.approx(expected_std, rel=0.06)  # 6000 samples: ~1% sampling error


@pytest.mark.parametrize("secure", ["", "aggregation { secure bounds(-1.0, 1.0) }"])
def test_seeded_noise_repeats_with_the_seed_and_never_across_rounds(secure_worker, secure):
    text = spec(f"privacy {{ noise 1.0 clip 1.0 seeded_noise true }}\n{secure}")
    first, again = _noise(text, 50, 20, 4), _noise(text, 50, 20, 4)
    np.testing.assert_array_equal(first, again)  # built again from the same spec: the same noise
    assert all(np.abs(first[r] - first[s]).min() > 0 for r in range(4) for s in range(r))  # fresh each round
    other_seed = _noise(text.replace("seed 3", "seed 4"), 50, 20, 4)
    assert np.abs(other_seed - first).min() > 0
    unseeded = text.replace("seeded_noise true", "")
    assert np.abs(_noise(unseeded, 50, 20, 2) - _noise(unseeded, 50, 20, 2)).min() > 0  # TFF's default: fresh


def test_secure_sum_clips_to_bounds_and_counts(secure_worker):
    text = spec("aggregation { secure bounds(-0.5, 0.5) }", train_extra="weighting uniform")
    process = _aggregation_process(text, 3)
    state = process.initialize()
    values = [np.array([0.2, 3.0, -0.1], np.float32), np.array([0.4, -7.0, 0.3], np.float32),
              np.array([0.0, 0.1, 0.6], np.float32)]
    result = process.next(state, values)
    clipped = [np.clip(v, -0.5, 0.5) for v in values]
    np.testing.assert_allclose(np.asarray(result.result), np.mean(clipped, axis=0), atol=1e-3)
    found = load_program(compile_text(text))["aggregator_report"](result.measurements)
    assert found["clipped_clients"] == 3  # above: clients 1 (3.0) and 3 (0.6); below: client 2 (-7.0)


def test_byte_counts_match_a_hand_computation():
    plain = compile_text(spec()).plan.communication
    params = 64 * 10 + 10
    assert plain == {"down": 4 * params, "up": 4 * params + 4, "up_uncompressed": 4 * params + 4, "weight": 4}
    quantized = compile_text(spec("aggregation { compress quantize(bits = 4, threshold = 100) }")).plan.communication
    # kernel 640 values > threshold: ceil(640 * 4 / 8) + 8 bytes of range; bias 10 values stay float32
    assert quantized["up"] == (320 + 8) + 4 * 10 + 4
    private = compile_text(spec("privacy { noise 1.0 clip 1.0 }")).plan.communication
    assert private["up"] == 4 * params  # unweighted: no example-count weight is sent


@pytest.mark.slow
def test_quantized_training_still_learns(tmp_path):
    """8-bit updates learn about as well as float32 ones, for a quarter of the upload."""
    finals = {}
    for name, blocks in (("plain", ""), ("quantized", "aggregation { compress quantize(bits = 8) }")):
        spec_path = tmp_path / f"{name}.fed"
        spec_path.write_text(spec(blocks, rounds=10, train_extra="local_epochs 3"))
        result = run_fedlang("run", spec_path, "--out", tmp_path / name)
        assert result.returncode == 0, result.stderr
        finals[name] = rows = read_jsonl(tmp_path / name / "metrics.jsonl")
        assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    plain, quantized = finals["plain"][-1], finals["quantized"][-1]
    assert quantized["eval_accuracy"] > 0.5  # 10 classes: chance is 0.1
    assert quantized["eval_accuracy"] > plain["eval_accuracy"] - 0.05
    assert quantized["bytes_up"] < plain["bytes_up"] / 3
    assert_no_worker_left()


@pytest.mark.slow
def test_dp_run_prints_the_accounted_epsilon_and_stops_at_the_budget(tmp_path):
    from fedlang.lib import privacy

    text = spec("privacy { noise 0.8 clip 1.0 epsilon 6 delta 1e-5 on_exceed stop }", rounds=6)
    compiled = compile_text(text)
    p = compiled.checked.privacy
    expected = privacy.epsilon_per_round(6, 0.8, 20 / 40, 1e-5, "rdp")
    within = max(t for t in range(7) if t == 0 or expected[t - 1] <= 6)
    assert 0 < within < 6 and p.rounds_to_run == within
    spec_path = tmp_path / "dp.fed"
    spec_path.write_text(text)
    result = run_fedlang("run", spec_path, "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert len(rows) == within
    assert [r["epsilon"] for r in rows] == pytest.approx(expected[:within], rel=1e-12)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["privacy"]["epsilon"] == pytest.approx(expected[within - 1])
    assert "rdp" in summary["privacy"]["accountant"]
    assert_no_worker_left()


@pytest.mark.slow
def test_refuse_policy_refuses_an_override_beyond_the_budget(tmp_path):
    spec_path = tmp_path / "dp.fed"
    spec_path.write_text(spec("privacy { noise 2.0 clip 1.0 epsilon 6 delta 1e-5 }", rounds=2))  # ε(2) ≈ 2.1
    result = run_fedlang("run", spec_path, "--rounds", "50", "--out", tmp_path / "run")
    assert result.returncode == 1
    assert "refusing to start" in result.stderr
    assert "Traceback" not in result.stderr
    assert read_jsonl(tmp_path / "run" / "metrics.jsonl") == []
    assert_no_worker_left()


@pytest.mark.slow
def test_a_secure_dp_run_keeps_stderr_free_of_tf_internals(tmp_path):
    """TFF's simulated secure sum builds assert ops TF reports as 'never used' (dozens of ERROR
    lines per run); the run shows none of them, only what fedlang has to say."""
    spec_path = tmp_path / "secure.fed"
    spec_path.write_text(spec("privacy { noise 1.0 clip 0.5 }\naggregation { secure bounds(-0.5, 0.5) }", rounds=2))
    result = run_fedlang("run", spec_path, "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(read_jsonl(tmp_path / "run" / "metrics.jsonl")) == 2
    assert "never used" not in result.stderr and "ERROR" not in result.stderr, result.stderr[:3000]
    assert_no_worker_left()
