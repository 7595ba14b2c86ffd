"""The labels of `source markov(…)`, drawn as the run draws them, without its windows.

`fedlang.lib.data.markov_sequences` (copied into the emitted program) writes every client's
text and then cuts it into windows of `window` tokens: clients × length × window int32 values.
Check needs only the labels (each window's next token), the client ids and the generator's
state afterwards (the hold-out and the partition draw from it next). This makes the same draws
in the same order — the per-step uniforms in blocks of steps, which a NumPy Generator fills
exactly as it fills them one step at a time — and keeps the text only.
tests/frontend/test_check_limits.py holds it equal to markov_sequences.

How big a markov source may be is said once, here (MARKOV_CAPS), and checked by
fedlang/constructs/sources.py before anything is drawn (E508).
"""

from __future__ import annotations

import numpy as np

UNIFORMS_PER_BLOCK = 1 << 20

# (what is multiplied, limit, what it costs): checked in this order; see docs/errors.md E508.
MARKOV_CAPS = (
    # measured on a loaded 2-core machine: ~0.45 s of CPU at each of the first two caps
    ("(clients + 1) × vocab²", lambda c, v, n, w: (c + 1) * v * v, 4 * 10**6,
     "Dirichlet draws for the transition rows"),
    ("clients × length × (vocab + 25)", lambda c, v, n, w: c * n * (v + 25), 4 * 10**7,
     "work writing the text, which check replays"),
    ("length", lambda c, v, n, w: n, 50_000, "sequential steps writing the text"),
    ("clients × (length − window) × window", lambda c, v, n, w: c * max(n - w, 0) * w, 2.5 * 10**8,
     "token ids in the run's examples (4 bytes each)"),
)


def markov_too_large(clients: int, vocab: int, length: int, window: int) -> str | None:
    """Why a markov source with these sizes is refused, or None."""
    for what, size, limit, cost in MARKOV_CAPS:
        value = size(clients, vocab, length, window)
        if value > limit:
            return f"{what} is {value:,.0f}, above the limit {limit:,.0f} ({cost})"
    return None


def markov_labels(vocab: int, clients: int, length: int, window: int, skew: float, concentration: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(labels int64 [n], client ids int64 [n]) of markov_sequences with the same arguments and rng."""
    shared = rng.dirichlet(np.full(vocab, float(concentration)), size=vocab)
    own = rng.dirichlet(np.full(vocab, float(concentration)), size=(clients, vocab))
    cumulative = np.cumsum((1 - skew) * shared + skew * own, axis=2)
    del own
    cumulative[:, :, -1] = 1.0
    text = np.empty((clients, length), dtype=np.int64)
    text[:, 0] = rng.integers(vocab, size=clients)
    everyone = np.arange(clients)
    steps_per_block = max(1, UNIFORMS_PER_BLOCK // clients)
    t = 1
    while t < length:
        steps = min(steps_per_block, length - t)
        uniforms = rng.random((steps, clients))
        for u in uniforms:
            rows = cumulative[everyone, text[:, t - 1]]
            text[:, t] = (rows < u[:, None]).sum(axis=1)
            t += 1
    labels = text[:, window:].reshape(-1)
    return labels, np.repeat(np.arange(clients, dtype=np.int64), length - window)
