"""Centralized references for a sequence spec, on exactly the data its run uses.

Compiles the spec, runs the emitted program's own `load_data()` (same seed, same split), then
  * trains the spec's Keras model centrally on all clients' training examples pooled, with the
    client optimizer of the spec (same batch size), for --epochs epochs, and evaluates it on the
    same test set `fedlang run` evaluates on;
  * counts bigrams: predict the token that most often followed the window's last token, over
    all clients pooled ("pooled bigram") and per client ("own-client bigram", which needs to know
    whose text a test window came from — a federated model does not).

    PYTHONPATH=. .venv/bin/python bench/sequence_baseline.py examples/sequence_markov.fed --epochs 10
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fedlang.diagnostics import Source  # noqa: E402
from fedlang.pipeline import compile_source  # noqa: E402


def bigram_accuracy(train_pairs, test_pairs, vocab: int) -> float:
    """Accuracy of predicting argmax count[last token] → next, counted on train_pairs."""
    counts = np.zeros((vocab, vocab))
    for last, nxt in train_pairs:
        np.add.at(counts, (last, nxt), 1)
    hits = total = 0
    for last, nxt in test_pairs:
        hits += int((counts[last].argmax(axis=1) == nxt).sum())
        total += len(nxt)
    return hits / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()

    path = Path(args.spec)
    compiled = compile_source(Source(str(path), path.read_text()), path.parent)
    namespace = {"__name__": "baseline"}
    exec(compile(compiled.program(), str(path), "exec"), namespace)  # noqa: S102
    tf = namespace["tf"]
    clients, (x_test, y_test) = namespace["load_data"]()
    vocab = compiled.checked.data.facts.classes

    # Which client each test window came from (load_data holds them out before partitioning).
    rng = np.random.default_rng(compiled.checked.seed)
    source = compiled.checked.data.source
    datalib = __import__("fedlang.lib.data", fromlist=["markov_sequences"])
    _, _, client_ids = datalib.markov_sequences(
        source["vocab"], source["clients"], source["length"], source["window"], source["skew"],
        source["concentration"], rng=rng)
    _, test_idx = datalib.holdout_split(len(client_ids), compiled.checked.data.test["fraction"], rng)
    test_clients = client_ids[test_idx]

    pooled = bigram_accuracy([(np.concatenate([c[0][:, -1] for c in clients]),
                               np.concatenate([c[1] for c in clients]))], [(x_test[:, -1], y_test)], vocab)
    hits = 0
    for k, (cx, cy) in enumerate(clients):
        mask = test_clients == k
        counts = np.zeros((vocab, vocab))
        np.add.at(counts, (cx[:, -1], cy), 1)
        hits += int((counts[x_test[mask, -1]].argmax(axis=1) == y_test[mask]).sum())
    own = hits / len(y_test)

    tf.keras.utils.set_random_seed(compiled.checked.seed)
    model = namespace["build_keras_model"]()
    optimizer = compiled.checked.train.client_optimizer
    keras_optimizer = {"adam": tf.keras.optimizers.Adam, "sgd": tf.keras.optimizers.SGD}[optimizer.name](
        learning_rate=optimizer["learning_rate"])
    model.compile(optimizer=keras_optimizer, loss=namespace["build_loss"](), metrics=namespace["build_metrics"]())
    x = np.concatenate([c[0] for c in clients])
    y = np.concatenate([c[1] for c in clients])
    model.fit(x, y, batch_size=compiled.checked.data.batch, epochs=args.epochs, shuffle=True, verbose=0)
    scores = model.evaluate(x_test, y_test, batch_size=1024, verbose=0, return_dict=True)
    print(f"centralized {compiled.checked.model.name}, {args.epochs} epochs on {len(y)} pooled examples: "
          f"test accuracy {scores['accuracy']:.3f}, loss {scores['loss']:.3f}")
    print(f"pooled bigram counts: test accuracy {pooled:.3f}")
    print(f"own-client bigram counts (knows each window's client): test accuracy {own:.3f}")


if __name__ == "__main__":
    main()
