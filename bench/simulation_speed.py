#!/usr/bin/env python3
"""Seconds per round, steady state: fedlang's two simulation paths, hand-written TFF, centralized Keras.

The experiment (issue 12): scikit-learn's digits split IID over 500 clients (~3.6 examples each),
an MLP 64-128-10, batch 32, shuffle buffer 100, one local epoch, client SGD 0.1, server SGD 1.0,
K clients sampled per round for K in 20, 100, 500. Four ways to train, each in its own process:

  per_client   fedlang, `execution per_client`: TFF's build_weighted_fed_avg, one TFF client
               computation per client (the emitted program, run as `fedlang run` runs it)
  fused        fedlang's default for this spec (`execution auto` → fused, fedlang/lib/fused.py):
               the round's clients trained back to back in one TFF client computation
  handwritten  bench/handwritten_fedavg.py: seed-style TFF (one tf.data.Dataset per client)
  keras        centralized Keras: the same examples in the same batches (each sampled client's
               shuffled batches, one after the other) and as many steps: the Keras model and SGD
               optimizer stepped over them inside one tf.function per round (no federated
               overhead at all, and none of `model.fit`'s per-call setup)

All TFF variants run on one local worker_binary started the same way (fedlang/lib/tff_worker.py).
Each process times every round from sampling to metrics (data building included, evaluation
excluded); the table shows the median of the rounds after the first two (tracing, warm-up), the
peak RSS of the Python process and of the TFF worker, and ratios within this run (absolute times
on a shared machine are noisy: compare ratios).

Run: `python bench/simulation_speed.py [--quick] [--clients 20,100,500] [--rounds N] [--repeat R]`
(--quick: 4 rounds per variant; default 10; --repeat: measure each variant R times, rotating the
order, and take the median over all their steady rounds).

Per-client vs hand-written, interleaved: `python bench/simulation_speed.py --interleave [--clients
20,100] [--rounds N] [--variants handwritten,per_client,...]`. One process, one worker: every
variant's training loop runs in its own thread, and a baton lets exactly one of them run at a time,
one round each in turn (handwritten round 1, per_client round 1, …, handwritten round 2, …). A
round is timed from the moment its variant gets the baton to its on_round callback (the whole loop
body: sampling, datasets, process.next, guard, metrics, monitor), in wall-clock seconds and in CPU
seconds of the Python process and the worker (less sensitive to other jobs on the machine). Each
round's time is divided by the hand-written round of the same cycle, so load changes hit both
sides of every ratio; the table gives the median of these paired ratios over the steady rounds
(3…N) and their quartiles.
Variants besides `handwritten` and `per_client` (the emitted program as `fedlang run` runs it)
switch parts of the emitted program off, to see what they cost: `per_client-norms` without the
update-norm measurement (measure_update_norms → the bare aggregator), `per_client-guard` without
guard_round, `per_client-norms-guard` without both.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
POPULATION = 500
VARIANTS = ("handwritten", "per_client", "fused", "keras")

SPEC = """experiment "simulation-speed"
seed 1

model mlp {{
  input   [64]
  dense   128 relu
  dense   10 softmax
  loss    sparse_categorical_crossentropy
  metrics [accuracy]
}}

data digits {{
  source    sklearn.digits
  scale     minmax
  partition iid(clients = {population})
  batch 32  shuffle 100
}}

train fedavg {{
  rounds {rounds}   clients_per_round {clients}   local_epochs 1
  client_optimizer sgd(learning_rate = 0.1)
  server_optimizer sgd(learning_rate = 1.0)
  execution {execution}
}}
"""


def spec_text(clients: int, rounds: int, execution: str, population: int = POPULATION) -> str:
    return SPEC.format(clients=clients, rounds=rounds, execution=execution, population=population)


# ------------------------------------------------------------------ one variant, in its own process


def peak_rss_mb() -> tuple[float, float]:
    """Peak RSS (MiB) of this process and of its largest finished child (the TFF worker)."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def run_fedlang(clients: int, rounds: int, execution: str) -> list[float]:
    """The emitted program of the bench spec, executed as `fedlang run` executes it."""
    sys.path.insert(0, str(REPO))
    from fedlang.diagnostics import Source
    from fedlang.pipeline import compile_source

    compiled = compile_source(Source("speed.fed", spec_text(clients, rounds, execution)), base_dir=REPO)
    assert compiled.plan.execution[0] == ("fused" if execution == "auto" else "per_client"), compiled.plan.execution
    namespace = {"__name__": "fedlang_program"}
    exec(compile(compiled.program_bytes(), "speed_program.py", "exec"), namespace)  # noqa: S102 - our own program
    worker = namespace["use_local_tff_worker"]()  # one local worker_binary, as `fedlang run` starts it
    seconds: list[float] = []
    try:
        namespace["train"](rounds, on_round=lambda row: seconds.append(row["seconds"]))
    finally:
        worker.close()
    return seconds


def run_handwritten(clients: int, rounds: int) -> list[float]:
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "bench"))
    from fedlang.lib.tff_worker import use_local_tff_worker
    import handwritten_fedavg

    worker = use_local_tff_worker()
    seconds: list[float] = []
    try:
        handwritten_fedavg.train(rounds, clients, POPULATION, on_round=lambda row: seconds.append(row["seconds"]))
    finally:
        worker.close()
    return seconds


def run_keras(clients: int, rounds: int) -> list[float]:
    """Centralized Keras on each round's examples, in the clients' batches, as many steps: the Keras
    model and optimizer stepped inside one tf.function per round (traced once)."""
    sys.path.insert(0, str(REPO / "bench"))
    import numpy as np
    import tensorflow as tf
    import handwritten_fedavg as hw

    data = hw.load_clients(POPULATION)
    model = hw.create_keras_model()
    optimizer = tf.keras.optimizers.SGD(0.1)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy()
    ids = tf.TensorSpec([None], tf.int64)

    @tf.function(input_signature=[tf.TensorSpec([None, 64], tf.float32), ids, ids, ids])
    def train_round(x, y, offsets, seeds):
        def client_batches(i):  # each client's shuffled batches, one client after the other
            part = tf.data.Dataset.from_tensor_slices((x[offsets[i]:offsets[i + 1]], y[offsets[i]:offsets[i + 1]]))
            return part.shuffle(hw.SHUFFLE_BUFFER, seed=seeds[i]).batch(hw.BATCH_SIZE)

        total = tf.constant(0.0)
        for xb, yb in tf.data.Dataset.range(tf.size(seeds, out_type=tf.int64)).flat_map(client_batches):
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
            total += loss
        return total

    seconds: list[float] = []
    for round_num in range(1, rounds + 1):
        started = time.perf_counter()
        rng = np.random.default_rng([hw.SEED, round_num])
        sampled = np.sort(rng.choice(len(data), size=clients, replace=False))
        seeds = rng.integers(2**31 - 1, size=len(sampled))
        offsets = np.concatenate([[0], np.cumsum([len(data[i][1]) for i in sampled])])
        float(train_round(np.concatenate([data[i][0] for i in sampled]), np.concatenate([data[i][1] for i in sampled]),
                          offsets, seeds))
        seconds.append(time.perf_counter() - started)
    return seconds


def variant_main(variant: str, clients: int, rounds: int) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if variant == "keras":
        seconds = run_keras(clients, rounds)
    elif variant == "handwritten":
        seconds = run_handwritten(clients, rounds)
    else:
        seconds = run_fedlang(clients, rounds, "auto" if variant == "fused" else "per_client")
    own, worker = peak_rss_mb()
    print("RESULT " + json.dumps({"variant": variant, "clients": clients, "seconds": seconds,
                                  "rss_mb": own, "worker_rss_mb": worker if variant != "keras" else None}))


# ------------------------------------------------------------------ interleaved, in one process


def fedlang_namespace(clients: int, rounds: int, execution: str, without: tuple[str, ...] = ()) -> dict:
    """The emitted program of the bench spec, loaded (exec) into a fresh namespace; `without`
    replaces parts of it by no-ops ("norms": measure_update_norms, "guard": guard_round)."""
    sys.path.insert(0, str(REPO))
    from fedlang.diagnostics import Source
    from fedlang.pipeline import compile_source

    compiled = compile_source(Source("speed.fed", spec_text(clients, rounds, execution)), base_dir=REPO)
    namespace = {"__name__": "fedlang_program"}
    exec(compile(compiled.program_bytes(), "speed_program.py", "exec"), namespace)  # noqa: S102 - our own program
    if "norms" in without:
        namespace["measure_update_norms"] = lambda inner: inner
    if "guard" in without:
        namespace["guard_round"] = lambda process, state, result, *args: (result, [])
    return namespace


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by this process and by the worker process `pid`."""
    own = os.times()
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return own.user + own.system + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def interleaved(clients: int, rounds: int, variants: list[str]) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds of every round of every variant, the variants taking turns round by
    round (see the module docstring). Returns ({variant: [wall seconds of round 1, 2, …]},
    {variant: [CPU seconds of round 1, 2, …]})."""
    import threading

    sys.path.insert(0, str(REPO / "bench"))
    import handwritten_fedavg
    import tensorflow_federated as tff

    trains = {}
    for variant in variants:
        if variant == "handwritten":
            trains[variant] = lambda on_round: handwritten_fedavg.train(rounds, clients, POPULATION, on_round=on_round)
        else:
            name, *without = variant.split("-")
            assert name == "per_client", variant
            namespace = fedlang_namespace(clients, rounds, "per_client", tuple(without))
            trains[variant] = lambda on_round, train=namespace["train"]: train(rounds, on_round=on_round)
    worker = fedlang_namespace(clients, rounds, "per_client")["use_local_tff_worker"]()  # as `fedlang run` starts it
    context = tff.framework.get_context_stack().current
    worker_pid = worker.pid
    turns = {v: threading.Event() for v in variants}
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    alive, failures = list(variants), {}

    def pass_baton(variant):
        if variant in alive and len(alive) > 1:
            turns[alive[(alive.index(variant) + 1) % len(alive)]].set()

    def run(variant):
        tff.framework.get_context_stack().set_default_context(context)  # the context stack is per thread
        turns[variant].wait()
        turns[variant].clear()
        began = [time.perf_counter(), cpu_seconds(worker_pid)]

        def on_round(row):
            seconds[variant].append(time.perf_counter() - began[0])
            cpu[variant].append(cpu_seconds(worker_pid) - began[1])
            if len(seconds[variant]) < rounds:  # wait for this variant's next turn
                pass_baton(variant)
                turns[variant].wait()
                turns[variant].clear()
                began[:] = [time.perf_counter(), cpu_seconds(worker_pid)]

        try:
            trains[variant](on_round)
        except BaseException as exc:  # noqa: BLE001 - reported with the table
            failures[variant] = f"{type(exc).__name__}: {exc}"
        following = alive[(alive.index(variant) + 1) % len(alive)]
        alive.remove(variant)
        if alive:
            turns[following].set()

    threads = [threading.Thread(target=run, args=(v,), daemon=True) for v in variants]
    try:
        for thread in threads:
            thread.start()
        turns[variants[0]].set()
        for thread in threads:
            thread.join()
    finally:
        worker.close()
    for variant, problem in failures.items():
        print(f"{variant} failed: {problem}", file=sys.stderr)
    return seconds, cpu


def interleaved_main(clients_list: list[int], rounds: int, variants: list[str]) -> None:
    if "handwritten" not in variants:
        variants = ["handwritten"] + variants
    print(f"interleaved in one process (one worker): {', '.join(variants)}; {rounds} rounds each, "
          f"steady rounds 3..{rounds}; load average at start {os.getloadavg()[0]:.1f} (2 cores)", flush=True)
    print("\n| clients/round | variant | wall s/round | wall ratio to hand-written (quartiles) | "
          "CPU s/round (Python + worker) | CPU ratio to hand-written (quartiles) |")
    print("|---|---|---|---|---|---|")

    def paired(times, variant):
        steady, base = times[variant][2:], times["handwritten"][2:]
        ratios = sorted(t / b for t, b in zip(steady, base))
        q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        return f"{statistics.median(steady):.3f}", f"{statistics.median(ratios):.3f} ({q[0]:.3f}–{q[2]:.3f})"

    for clients in clients_list:
        seconds, cpu = interleaved(clients, rounds, variants)
        for variant in variants:
            if len(seconds[variant]) > 2:
                wall, wall_ratio = paired(seconds, variant)
                used, cpu_ratio = paired(cpu, variant)
                print(f"| {clients} | {variant} | {wall} | {wall_ratio} | {used} | {cpu_ratio} |", flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f} (2 cores); goal: per_client / hand-written ≤ 1.05")


# ------------------------------------------------------------------ the table


def measure(variant: str, clients: int, rounds: int, log_dir: Path) -> dict:
    log = log_dir / f"{variant}-{clients}.log"
    with open(log, "w") as out:
        subprocess.run([sys.executable, __file__, "--variant", variant, "--clients", str(clients),
                        "--rounds", str(rounds)], stdout=out, stderr=subprocess.STDOUT, check=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    line = next(l for l in log.read_text().splitlines() if l.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    steady = result["seconds"][2:] or result["seconds"][-1:]
    result["median"] = statistics.median(steady)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 rounds per variant instead of 10")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--clients", default="20,100,500", help="clients per round, comma-separated")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure every variant this many times, in rotated order (medians over all)")
    parser.add_argument("--interleave", action="store_true",
                        help="per-client vs hand-written, round by round in one process (see above)")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant in this process
    args = parser.parse_args()
    rounds = args.rounds or (4 if args.quick else 10)
    if args.interleave:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        variants = args.variants.split(",") if args.variants != ",".join(VARIANTS) else ["handwritten", "per_client"]
        interleaved_main([int(c) for c in args.clients.split(",")], args.rounds or 30, variants)
        return
    if args.variant:
        variant_main(args.variant, int(args.clients), rounds)
        return
    print(f"digits MLP 64-128-10, batch 32, 1 local epoch, {POPULATION} clients; {rounds} rounds per variant "
          f"× {args.repeat}, median of rounds 3..{rounds}; load average at start {os.getloadavg()[0]:.1f}", flush=True)
    results: dict[tuple[str, int], dict] = {}
    variants = args.variants.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        for clients in [int(c) for c in args.clients.split(",")]:
            for repeat in range(args.repeat):
                shift = repeat % len(variants)  # rotate, so that a load change does not hit one variant only
                for variant in variants[shift:] + variants[:shift]:
                    try:
                        r = measure(variant, clients, rounds, Path(tmp))
                    except subprocess.CalledProcessError:
                        log = Path(tmp) / f"{variant}-{clients}.log"
                        print(f"{variant} at {clients} clients failed:\n{log.read_text()[-3000:]}", file=sys.stderr)
                        continue
                    worker = f"{r['worker_rss_mb']:.0f}" if r["worker_rss_mb"] else "-"
                    print(f"  {clients:4d} clients/round  {variant:12s} {r['median']:8.3f} s/round   "
                          f"peak RSS {r['rss_mb']:.0f} MiB (worker {worker})", flush=True)
                    seen = results.setdefault((variant, clients), {**r, "steady": []})
                    seen["steady"] += r["seconds"][2:] or r["seconds"][-1:]
                    seen["median"] = statistics.median(seen["steady"])
                    seen["rss_mb"] = max(seen["rss_mb"], r["rss_mb"])
                    if r["worker_rss_mb"]:
                        seen["worker_rss_mb"] = max(seen["worker_rss_mb"], r["worker_rss_mb"])
    print()
    print("| clients/round | per-client (s) | fused (s) | hand-written TFF (s) | Keras (s) | "
          "hand-written / fused | fused / Keras | per-client / hand-written | peak RSS MiB: per-client, fused, "
          "hand-written, Keras (Python + worker) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for clients in [int(c) for c in args.clients.split(",")]:
        got = {v: results.get((v, clients)) for v in VARIANTS}

        def sec(v):
            return f"{got[v]['median']:.3f}" if got[v] else "-"

        def ratio(a, b):
            return f"{got[a]['median'] / got[b]['median']:.2f}" if got[a] and got[b] else "-"

        def rss(v):
            if not got[v]:
                return "-"
            worker = got[v]["worker_rss_mb"]
            return f"{got[v]['rss_mb']:.0f}" + (f" + {worker:.0f}" if worker else "")

        print(f"| {clients} | {sec('per_client')} | {sec('fused')} | {sec('handwritten')} | {sec('keras')} | "
              f"{ratio('handwritten', 'fused')} | {ratio('fused', 'keras')} | {ratio('per_client', 'handwritten')} | "
              f"{rss('per_client')}, {rss('fused')}, {rss('handwritten')}, {rss('keras')} |")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f} (2 cores); goals at 100 clients/round: "
          "hand-written / fused ≥ 5, fused / Keras ≤ 3, per-client / hand-written ≤ 1.05")


if __name__ == "__main__":
    main()
