#!/usr/bin/env python3
"""Seconds per round with 1 and with N local TFF workers (`fedlang run --workers N`).

For each setting, `fedlang run SPEC --rounds R --workers W` runs in its own process; the figure is
the median wall time of rounds 2…R (round 1 traces). Settings alternate (1, N, 1, N, …) for
`--repeats` passes so that load from other processes hits both alike; the ratio is printed.
It also prints the largest relative difference of any train/eval number between the runs (the
workers split float32 sums at other points, so they agree to rounding, not bit for bit).

Run: `python bench/workers_round_time.py [--rounds 8] [--workers 2] [--repeats 2]
[--clients-per-round K] [spec.fed]` (default: examples/quickstart.fed with 50 clients per round).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(spec: Path, rounds: int, workers: int, out: Path) -> list[dict]:
    subprocess.run([sys.executable, "-m", "fedlang", "run", str(spec), "--rounds", str(rounds), "--workers",
                    str(workers), "--out", str(out), "-q"], cwd=REPO, check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("spec", nargs="?", default=str(REPO / "examples" / "quickstart.fed"))
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--clients-per-round", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.fed"
        text = Path(args.spec).read_text()
        if args.clients_per_round:
            text, n = re.subn(r"clients_per_round\s+\d+", f"clients_per_round {args.clients_per_round}", text)
            assert n == 1, "the spec has no clients_per_round to replace"
        spec.write_text(text)
        seconds: dict[int, list[float]] = {1: [], args.workers: []}
        runs: dict[int, list[dict]] = {}
        for i in range(args.repeats):
            for workers in (1, args.workers):
                rows = run(spec, args.rounds, workers, Path(tmp) / f"run-{workers}-{i}")
                seconds[workers].extend(r["seconds"] for r in rows[1:])
                runs[workers] = rows
        worst = 0.0
        for a, b in zip(runs[1], runs[args.workers]):
            for key, value in a.items():
                if key.startswith(("train_", "eval_")):
                    worst = max(worst, abs(value - b[key]) / max(abs(value), 1e-12))
    one, many = statistics.median(seconds[1]), statistics.median(seconds[args.workers])
    print(f"spec {args.spec}, {args.clients_per_round or 'spec'} clients per round, rounds 2-{args.rounds}, "
          f"{args.repeats} passes, {os.cpu_count()} CPUs")
    print(f"{'workers':>8}  {'s/round (median)':>16}")
    print(f"{1:>8}  {one:>16.3f}")
    print(f"{args.workers:>8}  {many:>16.3f}")
    print(f"ratio {args.workers} workers / 1 worker: {many / one:.2f}")
    print(f"largest relative difference of a train/eval number: {worst:.2e}")


if __name__ == "__main__":
    main()
