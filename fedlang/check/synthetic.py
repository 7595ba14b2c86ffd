"""The labels of the FedProx Synthetic(α, β) set, drawn as the run draws them, without its features.

`fedlang.lib.data.synthetic_fedprox` (copied into the emitted program) draws every device's
model, input mean and features from one generator and keeps the features: 3000 devices took
1.7 GB at check time. Check needs only the labels, the client ids and the generator's state
afterwards (the hold-out and the partition draw from it next), so this makes the same draws in
the same order — features in blocks of rows, which a NumPy Generator fills exactly as it fills
one large array — and keeps only each example's label. Memory: the labels plus one block.
tests/frontend/test_check_limits.py holds it equal to synthetic_fedprox.
"""

from __future__ import annotations

import numpy as np

ROWS_PER_BLOCK = 8192


def synthetic_labels(alpha: float, beta: float, num_devices: int, num_features: int, num_classes: int,
                     iid: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(labels int64 [n], client ids int64 [n]) of synthetic_fedprox with the same arguments and rng."""
    samples_per_device = rng.lognormal(4, 2, num_devices).astype(np.int64) + 50
    model_means = rng.normal(0, alpha, num_devices)
    input_centres = rng.normal(0, beta, num_devices)
    feature_std = np.arange(1, num_features + 1, dtype=np.float64) ** (-1.2 / 2)
    if iid:
        shared_w = rng.normal(0, 1, (num_features, num_classes))
        shared_b = rng.normal(0, 1, num_classes)
    labels = np.empty(int(samples_per_device.sum()), dtype=np.int64)
    start = 0
    for k in range(num_devices):
        if iid:
            w, b, mean_x = shared_w, shared_b, np.zeros(num_features)
        else:
            w = rng.normal(model_means[k], 1, (num_features, num_classes))
            b = rng.normal(model_means[k], 1, num_classes)
            mean_x = rng.normal(input_centres[k], 1, num_features)
        left = int(samples_per_device[k])
        while left:
            rows = min(left, ROWS_PER_BLOCK)
            x = mean_x + feature_std * rng.standard_normal((rows, num_features))
            labels[start:start + rows] = np.argmax(x @ w + b, axis=1)
            start += rows
            left -= rows
    return labels, np.repeat(np.arange(num_devices, dtype=np.int64), samples_per_device)
