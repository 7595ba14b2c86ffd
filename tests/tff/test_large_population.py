"""10^5 clients run on the fused path: the population is arrays, and only a round's sampled
clients reach TensorFlow (bench/large_population.py measures 1000 rounds and the memory)."""

from __future__ import annotations

import math

import numpy as np

from .support import compile_text, load_program

SPEC = """\
seed 0
model m {
  input [4]
  dense 8 relu
  dense 3 softmax
  loss sparse_categorical_crossentropy
  metrics [accuracy]
}
data {
  source npz("clients.npz", client = "client")
  partition natural
  batch 4
}
train fedavg { rounds 3  clients_per_round 50 }
"""


def test_100000_clients_train_on_the_fused_path(tmp_path, tff_worker):
    rng = np.random.default_rng(0)
    client = np.repeat(np.arange(100_000), rng.integers(1, 4, size=100_000))
    x = rng.normal(size=(len(client), 4)).astype(np.float32)
    np.savez(tmp_path / "clients.npz", x=x, y=np.argmax(x[:, :3], axis=1), client=client)
    compiled = compile_text(SPEC, base_dir=tmp_path)
    assert compiled.plan.execution[0] == "fused"
    ns = load_program(compiled)
    clients, _ = ns["load_data"]()
    assert len(clients) == 100_000 and all(isinstance(part, np.ndarray) for part in clients[0])
    rows = []
    ns["train"](on_round=rows.append)
    assert [r["clients"] for r in rows] == [50, 50, 50]
    assert all(math.isfinite(r["train_loss"]) and r["update_norm_max"] >= r["update_norm_mean"] > 0 for r in rows)
