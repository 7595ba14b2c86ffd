"""Per-client test sets and the distribution of per-client results (NumPy only).

`split_client_tests` is what the emitted program copies, and `fedlang check` (check/clients.py)
calls it through `checked_split_client_tests` with the same generator, so check reports the test
sizes the run will have. The summary functions turn one evaluation's per-client values into the
figures a round's row holds.
"""

import numpy as np

REQUIRES = {"split_client_tests": (), "checked_split_client_tests": ("split_client_tests",),
            "sample_eval_clients": (), "worst_decile": (), "client_metric_summary": ("worst_decile",),
            "finetune_summary": ("client_metric_summary",)}


def split_client_tests(parts, fraction, rng):
    """Each client keeps a random round(fraction × n) of its n examples (indices in `parts`) for
    testing: (train_parts, test_parts), each index array sorted."""
    train_parts, test_parts = [], []
    for idx in parts:
        test = np.zeros(len(idx), dtype=bool)
        test[rng.permutation(len(idx))[:int(round(fraction * len(idx)))]] = True
        train_parts.append(np.sort(idx[~test]))
        test_parts.append(np.sort(idx[test]))
    return train_parts, test_parts


def checked_split_client_tests(parts, fraction, rng):
    """split_client_tests (what `fedlang check` replays; the program copies the unchecked core), raising
    a ValueError naming the clients left without test or training examples."""
    if not 0 < fraction < 1:
        raise ValueError(f"split_client_tests: fraction must be between 0 and 1 (exclusive), got {fraction!r}")
    train_parts, test_parts = split_client_tests([np.asarray(idx) for idx in parts], fraction, rng)
    for what, sizes in (("test", [len(p) for p in test_parts]), ("training", [len(p) for p in train_parts])):
        problem = [(c, len(parts[c])) for c, size in enumerate(sizes) if size == 0]
        if problem:
            shown = ", ".join(f"client {c} ({n} example{'s' if n != 1 else ''})" for c, n in problem[:3])
            more = f" and {len(problem) - 3} more" if len(problem) > 3 else ""
            raise ValueError(f"keeping {fraction:g} of each client's examples for testing leaves "
                             f"{len(problem)} client{'s' if len(problem) != 1 else ''} without {what} examples: "
                             f"{shown}{more}")
    return train_parts, test_parts


def sample_eval_clients(rng, num_clients, sample):
    """The clients a federated evaluation uses: all (sample None or ≥ num_clients), else a seeded sample, sorted."""
    if sample is None or sample >= num_clients:
        return np.arange(num_clients)
    return np.sort(rng.choice(num_clients, size=sample, replace=False))


def worst_decile(values, higher_is_better):
    """Mean of the worst 10% of the values (at least one value)."""
    values = np.sort(np.asarray(values, dtype=np.float64))
    k = max(1, int(np.ceil(0.1 * len(values))))
    return float(np.mean(values[:k] if higher_is_better else values[-k:]))


def client_metric_summary(values, weights, prefix, name):
    """One metric over clients: example-weighted and client-uniform mean, p10/p50/p90, worst decile.

    Keys are `{prefix}{name}` (the example-weighted mean) and `{prefix}{name}_uniform`, `_p10`,
    `_p50`, `_p90`, `_worst10`. For a loss the worst decile is the highest values.
    """
    values = np.asarray(values, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    key = prefix + name
    return {key: float(np.sum(values * weights) / np.sum(weights)), key + "_uniform": float(np.mean(values)),
            key + "_p10": float(p10), key + "_p50": float(p50), key + "_p90": float(p90),
            key + "_worst10": worst_decile(values, higher_is_better=name != "loss")}


def finetune_summary(before, after, weights, metric_names):
    """The fine-tuned models' figures (`ft_…`) and the gain over the global model per client.

    `before`/`after` map metric names to per-client values. The gain is judged on the first
    declared metric (the loss if there is none): `ft_gain_p10/p50/p90` and `ft_worse`, the number
    of clients whose fine-tuned model is worse on their own test set than the global model.
    """
    row = {}
    for name in metric_names:
        row.update(client_metric_summary(after[name], weights, "ft_", name))
    judged = metric_names[1] if len(metric_names) > 1 else metric_names[0]
    gain = np.asarray(after[judged], dtype=np.float64) - np.asarray(before[judged], dtype=np.float64)
    if judged == "loss":
        gain = -gain
    p10, p50, p90 = np.percentile(gain, [10, 50, 90])
    row.update({"ft_gain_mean": float(np.mean(gain)), "ft_gain_p10": float(p10), "ft_gain_p50": float(p50),
                "ft_gain_p90": float(p90), "ft_worse": int(np.sum(gain < 0)), "ft_better": int(np.sum(gain > 0))})
    return row
