#!/usr/bin/env python3
"""10^5 clients: how long `fedlang check` takes, and whether memory stays flat over 1000 rounds.

Writes an .npz with POPULATION clients (features 16, 2-8 examples each, labels from a fixed linear
model; seed 0) and a spec that reads it with `partition natural`, samples 100 clients per round and
trains a small MLP. Then:

1. `fedlang check` of that spec, in a fresh process, wall time (median of 3);
2. the emitted program (as `fedlang run` executes it) for ROUNDS rounds, recording after every
   round the resident set size of the Python process and of the TFF worker (from /proc); prints
   both at rounds 1, 50, 100, 500 and the last, and the ratio RSS(last) / RSS(50).

Run: `python bench/large_population.py [--rounds 1000] [--execution auto|per_client]
[--population 100000]` (the default, fused, takes ~10 minutes on 2 loaded cores). The worker runs
with MALLOC_ARENA_MAX=2 (fedlang/lib/tff_worker.py); `MALLOC_ARENA_MAX=16 python bench/…` measures
it with glibc's default arena count on 2 cores instead.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

SPEC = """experiment "large-population"
seed 0

model mlp {{
  input   [16]
  dense   32 relu
  dense   4 softmax
  loss    sparse_categorical_crossentropy
  metrics [accuracy]
}}

data clients {{
  source    npz("clients.npz", client = "client")
  partition natural
  batch 8
}}

train fedavg {{
  rounds {rounds}   clients_per_round 100   local_epochs 1
  client_optimizer sgd(learning_rate = 0.1)
  execution {execution}
}}
"""


def write_population(folder: Path, population: int) -> Path:
    """POPULATION clients with 2-8 examples each (seed 0)."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(2, 9, size=population)
    client = np.repeat(np.arange(population), sizes)
    x = rng.normal(size=(len(client), 16)).astype(np.float32)
    y = np.argmax(x @ rng.normal(size=(16, 4)), axis=1).astype(np.int64)
    path = folder / "clients.npz"
    np.savez(path, x=x, y=y, client=client)
    return path


def rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--population", type=int, default=100_000)
    parser.add_argument("--execution", default="auto", choices=("auto", "per_client"))
    parser.add_argument("--gc-every-round", action="store_true",
                        help="run Python's cyclic garbage collector after every round (an experiment)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_population(folder, args.population)
        spec = folder / "large.fed"
        spec.write_text(SPEC.format(rounds=args.rounds, execution=args.execution))
        times, cpu = [], []
        for _ in range(3):
            started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            out = subprocess.run([sys.executable, "-m", "fedlang", "check", str(spec)], capture_output=True,
                                 text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            times.append(time.perf_counter() - started)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            if out.returncode != 0:
                sys.exit(out.stdout + out.stderr)
        print(out.stdout.rstrip())
        print(f"fedlang check with {args.population:,} clients: {statistics.median(times):.2f} s wall, "
              f"{statistics.median(cpu):.2f} s CPU (median of 3, whole process; load average "
              f"{os.getloadavg()[0]:.1f})", flush=True)

        sys.path.insert(0, str(REPO))
        from fedlang.pipeline import compile_file

        compiled = compile_file(spec)
        namespace = {"__name__": "fedlang_program", "__file__": str(folder / "program.py")}
        exec(compile(compiled.program_bytes(), str(folder / "program.py"), "exec"), namespace)  # noqa: S102
        # one local worker, as `fedlang run` starts it (MALLOC_ARENA_MAX=16 in the environment: glibc's default
        # on 2 cores, which the worker used before fedlang set 2)
        worker = pool = namespace["use_local_tff_worker"](log_path=str(folder / "worker.log"))
        samples: dict[int, tuple[float, float, float]] = {}
        marks = {1, 50, 100, 500, args.rounds}

        def on_round(row):
            if args.gc_every_round:
                gc.collect()
            samples[row["round"]] = (rss_mb(), rss_mb(worker.pid), row["seconds"])
            if row["round"] in marks or row["round"] % 100 == 0:
                own, other, seconds = samples[row["round"]]
                print(f"round {row['round']:5d}: RSS python {own:7.1f} MiB, worker {other:7.1f} MiB; "
                      f"{seconds:.3f} s this round", flush=True)

        started = time.perf_counter()
        try:
            namespace["train"](args.rounds, on_round=on_round)
        finally:
            pool.close()
        print(f"{args.rounds} rounds in {time.perf_counter() - started:.0f} s ({compiled.plan.execution[0]} path); "
              f"median {statistics.median(s[2] for s in samples.values()):.3f} s per round")
        if 50 in samples:
            last = max(samples)
            for index, name in ((0, "python"), (1, "worker")):
                a, b = samples[50][index], samples[last][index]
                print(f"RSS {name}: round 50 {a:.1f} MiB, round {last} {b:.1f} MiB, ratio {b / a:.3f}")


if __name__ == "__main__":
    main()
