#!/usr/bin/env python3
"""Front-end latency: how long `fedlang check` / `fedlang emit` take, as whole processes.

Baselines: `python -c pass` (the interpreter floor) and `python -c "import tensorflow_federated"`
(what a hand-written TFF script costs before it can report its first error). The goal is a front
end that answers well under a second, i.e. a small multiple of the floor and a fraction of TFF's
import. Run: `python bench/frontend_latency.py [--repeat N] [spec.fed]`.
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed(cmd: list[str], repeat: int) -> float:
    """Median wall time of `cmd` over `repeat` runs (after one warm-up run)."""
    subprocess.run(cmd, cwd=REPO, capture_output=True, check=True)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default="examples/quickstart.fed")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    py = sys.executable
    floor = timed([py, "-c", "pass"], args.repeat)
    tff = timed([py, "-c", "import tensorflow_federated"], max(1, args.repeat // 2))
    rows = [
        ("python -c pass", floor),
        ("import tensorflow_federated", tff),
        ("fedlang check", timed([py, "-m", "fedlang", "check", args.spec], args.repeat)),
        ("fedlang check --types", timed([py, "-m", "fedlang", "check", "--types", args.spec], args.repeat)),
        ("fedlang emit", timed([py, "-m", "fedlang", "emit", args.spec], args.repeat)),
    ]
    print(f"spec: {args.spec}; median of {args.repeat} runs")
    print(f"{'command':<30} {'seconds':>8} {'x floor':>8} {'/ TFF import':>12}")
    for name, seconds in rows:
        print(f"{name:<30} {seconds:8.3f} {seconds / floor:8.1f} {seconds / tff:12.2f}")


if __name__ == "__main__":
    main()
