"""secure_sum, add and subtract steps against numpy (secure_sum runs on the simulated secure context)."""

import numpy as np
import pytest

from .support import compile_text, load_program

pytestmark = pytest.mark.tff

SPEC = """
experiment "steps"
seed 1
aggregate agg(update: float32[*] @CLIENTS) -> float32[*] @SERVER {{
{steps}
}}
model m {{
  input [4]
  dense 3 softmax
  loss sparse_categorical_crossentropy
}}
data {{
  source sklearn.iris
  partition iid(clients = 10)
}}
train fedavg {{ rounds 1 weighting uniform }}
aggregation {{ aggregator agg }}
"""


@pytest.fixture
def secure_worker():
    from fedlang.lib.tff_worker import simulate_secure_sums, use_local_tff_worker

    worker = use_local_tff_worker(transform=simulate_secure_sums)
    yield worker
    worker.close()


def _aggregate(steps: str, values: np.ndarray) -> np.ndarray:
    import tensorflow_federated as tff

    compiled = compile_text(SPEC.format(steps=steps))
    assert compiled.plan.secure_aggregation == ("secure_sum" in steps)
    process = load_program(compiled)["build_aggregator"]().create(tff.TensorType(np.float32, [values.shape[1]]))
    return np.asarray(process.next(process.initialize(), list(values)).result)


def test_secure_sum_clips_then_sums(secure_worker):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.3, (6, 5)).astype(np.float32)
    x[2, 1], x[4, 3] = 4.0, -9.0  # outliers, clipped to the bounds
    out = _aggregate("  return secure_sum(update, lower = -0.5, upper = 0.5)", x)
    np.testing.assert_allclose(out, np.clip(x, -0.5, 0.5).sum(axis=0), atol=1e-3)


def test_add_and_subtract_at_both_placements(secure_worker):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (5, 4)).astype(np.float32)
    steps = """  doubled @CLIENTS = add(update, update)
  clipped @CLIENTS = clip_norm(update, 1.0)
  diff    @CLIENTS = subtract(doubled, clipped)
  a       @SERVER  = mean(diff)
  b       @SERVER  = mean(clipped)
  return add(a, b)"""
    out = _aggregate(steps, x)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    clipped = x * np.minimum(1.0, 1.0 / norms)
    np.testing.assert_allclose(out, (2 * x - clipped).mean(0) + clipped.mean(0), rtol=1e-5, atol=1e-5)
