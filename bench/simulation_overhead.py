#!/usr/bin/env python3
"""What a `simulation` block costs per round: the same spec with and without it.

Two measurements:
1. the drawing alone: `simulate_round` (fedlang/lib/simulation.py, as the emitted program runs it)
   for the spec's population, per round, and for a population of 10^5 clients;
2. whole rounds: `fedlang run --rounds N` of the spec without the block and with a block that
   leaves the training unchanged (every client available, no dropout, no deadline, a time model
   drawn for every selected client), median wall time per round (round 1, which traces, excluded).

Run: `python bench/simulation_overhead.py [--rounds N] [spec.fed]` (default: examples/quickstart.fed).
Prints the per-round ratio with / without the block. On a shared machine, run it twice.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fedlang.lib import simulation as simlib  # noqa: E402
from fedlang.pipeline import compile_file  # noqa: E402

NEUTRAL_BLOCK = """
simulation {
  available 1.0   dropout 0
  speed lognormal(median = 0.01, sigma = 0.8)   bandwidth lognormal(median = 10, sigma = 0.5)
}
"""


def draw_cost(config: dict, sizes, k: int, rounds: int = 200) -> float:
    """Median seconds of one simulate_round call."""
    times = []
    for r in range(1, rounds + 1):
        rng = np.random.default_rng([0, r])
        started = time.perf_counter()
        simlib.simulate_round(rng, config, r, sizes, k, 2, 16, 100_000, 100_000)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def round_seconds(spec: Path, rounds: int, out: Path) -> float:
    subprocess.run([sys.executable, "-m", "fedlang", "run", str(spec), "--rounds", str(rounds), "--out", str(out),
                    "-q"], cwd=REPO, check=True, capture_output=True, env={**__import__("os").environ,
                                                                           "PYTHONPATH": str(REPO)})
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["seconds"] for r in rows[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("spec", nargs="?", default=str(REPO / "examples" / "quickstart.fed"))
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    spec = Path(args.spec).resolve()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        simulated = tmp / spec.name
        simulated.write_text(spec.read_text() + NEUTRAL_BLOCK)
        compiled = compile_file(simulated)
        sizes, k = compiled.checked.data.client_sizes, compiled.checked.train.clients_per_round
        config = dict(compiled.checked.simulation.config)
        per_draw = draw_cost(config, sizes, k)
        big = draw_cost(dict(config, available=("probability", 0.3), over_select=1.3, dropout=0.05, deadline=30.0),
                        np.full(100_000, 20), 100, rounds=50)
        print(f"simulate_round alone: {per_draw * 1e3:.2f} ms per round ({len(sizes)} clients, {k} per round); "
              f"{big * 1e3:.2f} ms with 10^5 clients, 130 selected")
        # Alternate the two runs so that load changes on a shared machine hit both alike.
        plain, with_block = [], []
        for i in range(2):
            plain.append(round_seconds(spec.parent / spec.name, args.rounds, tmp / f"plain{i}"))
            with_block.append(round_seconds(simulated, args.rounds, tmp / f"sim{i}"))
        a, b = statistics.median(plain), statistics.median(with_block)
        print(f"wall time per round (median of rounds 2..{args.rounds}, two runs each): "
              f"without {a:.3f} s, with {b:.3f} s; ratio {b / a:.3f}")
        print(f"the drawing is {per_draw / a:.2%} of a round")


if __name__ == "__main__":
    main()
