#!/usr/bin/env python3
"""Property-based fuzzing of the front end: N cases through `fedlang check` (and `emit`, `fmt`).

Cases come from tests/fuzzing/specgen.py: grammar-aware specs (60%), mutants of those (10%) and
mutants of every spec in examples/ and tests/fixtures/ (30%), with odd CSV/npz files next to
them. Case i is drawn from random.Random(f"{seed}-{i}"), so any case can be replayed. Each is
checked by tests/fuzzing/oracle.py (exit 0/1/2, no traceback, positioned errors, no raw control
characters, emitted program compiles from its bytes and holds no spec-derived code, fmt
idempotent). Prints counts by outcome, problems by class (known-open classes owned by other
work marked), tracebacks, unsafe programs and throughput; saves a reproducer folder (spec.fed,
data files, report.txt) for the first few cases of every problem signature.

    python bench/fuzz.py --cases 100000 [--jobs 1] [--seed 0] [--out runs/fuzz]
    python bench/fuzz.py --replay 1234        # rerun one case and print its spec and problems
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import multiprocessing.pool
import os
import random
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.fuzzing import oracle, specgen  # noqa: E402


def draw_case(seed: str, i: int, corpus, privacy_rate: float) -> specgen.Case:
    return specgen.any_case(specgen.RandomDraw(random.Random(f"{seed}-{i}")), corpus, privacy_rate)


def signature(problem: str, result: oracle.Result) -> str:
    """A problem with its specifics blanked out, so one bug counts as one signature."""
    if problem.startswith("internal") and result.traceback:
        frames = re.findall(r'File "([^"]*fedlang[^"]*)", line (\d+), in (\w+)', result.traceback)
        where = f" at {Path(frames[-1][0]).name}:{frames[-1][2]}" if frames else ""
        return re.sub(r"\d+", "N", problem.split(":", 2)[1].strip())[:90] + where
    return re.sub(r"'[^']*'|\"[^\"]*\"|\d+(\.\d+)?", "…", problem)[:110]


def new_tally() -> dict:
    return {"outcomes": collections.Counter(), "kinds": collections.Counter(), "problems": collections.Counter(),
            "examples": {}, "unsafe": 0, "tracebacks": 0, "slow": 0, "seconds": 0.0, "max_seconds": 0.0,
            "cases": 0, "saved": []}


def worker(args, current=None, started=None, tally_file: Path | None = None) -> dict:
    """Run cases start, start + step, … below n; returns the tallies and saved reproducers.
    `current`/`started` (shared values) tell the supervisor which case runs since when;
    `tally_file` gets the tallies after every case, for the supervisor to read if it kills us."""
    start, step, n, opts = args
    if opts["memory_gb"]:
        limit = int(opts["memory_gb"] * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    corpus = specgen.repository_specs()
    out = Path(opts["out"])
    work = Path(tempfile.mkdtemp(prefix=f"fedlang-fuzz-{start}-"))
    tally = new_tally()
    saved_per_signature = collections.Counter(opts.get("saved_counts", {}))
    last_report = time.time()
    deadline = opts["deadline"]
    for i in range(start, n, step):
        if deadline and time.time() > deadline:
            break
        if current is not None:
            current.value, started.value = i, time.time()
        try:
            case = draw_case(opts["seed"], i, corpus, opts["privacy_rate"])
        except Exception as exc:  # noqa: BLE001 - a generator bug must not end the run
            tally["outcomes"]["generator-error"] += 1
            tally["examples"].setdefault(f"generator: {type(exc).__name__}", (i, str(exc)[:200], None))
            continue
        result = oracle.run_case(case, work / "case", timeout=opts["timeout"], emit=not opts["no_emit"])
        tally["cases"] += 1
        tally["outcomes"][result.outcome] += 1
        tally["kinds"][case.kind.split(":")[0]] += 1
        tally["seconds"] += result.seconds
        tally["max_seconds"] = max(tally["max_seconds"], result.check_seconds)
        tally["slow"] += result.check_seconds > opts["slow"]
        tally["unsafe"] += result.unsafe
        tally["tracebacks"] += result.traceback is not None
        for problem in result.problems:
            sig = signature(problem, result)
            tally["problems"][sig] += 1
            tally["examples"].setdefault(sig, (i, problem[:200], oracle.known_owner(problem)))
            if saved_per_signature[sig] < opts["keep"]:
                saved_per_signature[sig] += 1
                tally["saved"].append(str(oracle.save_reproducer(case, result, out, i)))
        if result.check_seconds > opts["slow"] and not result.problems and saved_per_signature["slow"] < opts["keep"]:
            saved_per_signature["slow"] += 1
            oracle.save_reproducer(case, oracle.Result(result.outcome, [f"slow: check took {result.check_seconds:.1f} s"],
                                                       seconds=result.seconds, exit_code=result.exit_code), out, i)
        if tally_file is not None:
            tmp = tally_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({**tally, "saved_counts": saved_per_signature}, default=str))
            tmp.replace(tally_file)
        if step == 1 and time.time() - last_report > 60:
            last_report = time.time()
            print(f"  {tally['cases']} cases, {dict(tally['outcomes'])}, {sum(tally['problems'].values())} problems",
                  file=sys.stderr, flush=True)
            (out / "progress.json").write_text(json.dumps(
                {k: v for k, v in tally.items() if k != "saved"}, indent=1, default=str))
    return tally


def _child(args, current, started, tally_file: str) -> None:
    worker(args, current, started, Path(tally_file))


def supervised(args) -> dict:
    """`worker` in a child process, restarted past any case that outlives the SIGALRM deadline
    (a C loop that never returns to Python, e.g. NumPy's Dirichlet sampler with alpha = 1e-300):
    that case counts as a hang, with its reproducer saved."""
    start, step, n, opts = args
    out = Path(opts["out"])
    corpus = specgen.repository_specs()
    tallies, begin, segment = [], start, 0
    saved_counts: dict = {}
    while begin < n and not (opts["deadline"] and time.time() > opts["deadline"]):
        current, started = multiprocessing.Value("q", -1), multiprocessing.Value("d", 0.0)
        tally_file = out / f"tally-{start}-{segment}.json"
        tally_file.unlink(missing_ok=True)
        child = multiprocessing.Process(target=_child, args=((begin, step, n, {**opts, "saved_counts": saved_counts}),
                                                             current, started, str(tally_file)))
        child.start()
        hung = None
        while child.is_alive():
            child.join(1.0)
            if child.is_alive() and started.value and time.time() - started.value > _wall_limit(opts):
                hung = current.value
                child.kill()
                child.join()
        tally = new_tally()
        if tally_file.exists():
            loaded = json.loads(tally_file.read_text())
            saved_counts = loaded.pop("saved_counts", saved_counts)
            for key in ("outcomes", "kinds", "problems"):
                loaded[key] = collections.Counter(loaded[key])
            tally = loaded
            tally_file.unlink()
        if hung is None:
            tallies.append(tally)
            break
        problem = f"hang: no answer within {_wall_limit(opts):g} s of wall time (not even to SIGPROF)"
        case = draw_case(opts["seed"], hung, corpus, opts["privacy_rate"])
        result = oracle.Result("hang", [problem], seconds=time.time() - started.value)
        tally["cases"] += 1
        tally["outcomes"]["hang"] += 1
        tally["kinds"][case.kind.split(":")[0]] += 1
        sig = signature(problem, result)
        tally["problems"][sig] += 1
        tally["examples"].setdefault(sig, (hung, problem, oracle.known_owner(problem)))
        tally["saved"].append(str(oracle.save_reproducer(case, result, out, hung)))
        print(f"  case {hung} hung; restarting after it", file=sys.stderr, flush=True)
        tallies.append(tally)
        begin, segment = hung + step, segment + 1
    return merge(tallies) if tallies else new_tally()


def _wall_limit(opts) -> float:
    """Wall seconds after which the supervisor kills a case: the CPU timeout (SIGPROF in the
    child) with room for a shared machine, where a niced child gets a fraction of a core."""
    return opts["timeout"] * 6 + 60


def merge(tallies: list[dict]) -> dict:
    total = tallies[0]
    for t in tallies[1:]:
        for key in ("outcomes", "kinds", "problems"):
            total[key] += t[key]
        for key in ("unsafe", "tracebacks", "slow", "seconds", "cases"):
            total[key] += t[key]
        total["max_seconds"] = max(total["max_seconds"], t["max_seconds"])
        for sig, ex in t["examples"].items():
            total["examples"].setdefault(sig, ex)
        total["saved"] += t["saved"]
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--first", type=int, default=0, help="number of the first case")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (the machine's cores are shared)")
    parser.add_argument("--seed", default="0")
    parser.add_argument("--out", default="runs/fuzz", help="folder for reproducers and summary.json")
    parser.add_argument("--timeout", type=float, default=20.0, help="CPU seconds before a case counts as a hang")
    parser.add_argument("--slow", type=float, default=2.0,
                        help="CPU seconds of `check` above which a case counts as slow")
    parser.add_argument("--privacy-rate", type=float, default=0.05,
                        help="share of grammar specs with a privacy block (the accountant costs ~1 s)")
    parser.add_argument("--memory-gb", type=float, default=4.0, help="address-space limit per worker (0: none)")
    parser.add_argument("--keep", type=int, default=3, help="reproducers saved per problem signature")
    parser.add_argument("--no-emit", action="store_true", help="check only (skip the emitted-program properties)")
    parser.add_argument("--minutes", type=float, default=0, help="stop after this long (0: run every case)")
    parser.add_argument("--replay", type=int, help="run case number REPLAY only and print it")
    a = parser.parse_args()
    opts = {k: getattr(a, k) for k in ("seed", "out", "timeout", "slow", "privacy_rate", "memory_gb", "keep",
                                        "no_emit")}
    opts["deadline"] = time.time() + a.minutes * 60 if a.minutes else None
    if a.replay is not None:
        case = draw_case(a.seed, a.replay, specgen.repository_specs(), a.privacy_rate)
        result = oracle.run_case(case, Path(tempfile.mkdtemp()) / "case", timeout=a.timeout)
        print(case.spec, "\nfiles:", {k: v[:200] for k, v in case.files.items()}, "\ndata:", case.data_dir)
        print(result.outcome, result.exit_code, f"{result.seconds:.2f} s", *result.problems, result.traceback or "",
              sep="\n")
        return
    Path(a.out).mkdir(parents=True, exist_ok=True)
    started = time.time()
    jobs = [(a.first + k, a.jobs, a.first + a.cases, opts) for k in range(a.jobs)]
    if a.jobs == 1:
        tallies = [supervised(jobs[0])]
    else:
        with multiprocessing.pool.ThreadPool(a.jobs) as pool:  # each thread supervises its own child process
            tallies = pool.map(supervised, jobs)
    t = merge(tallies)
    wall = time.time() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers, all joined by now
    cpu = usage.ru_utime + usage.ru_stime
    known = sum(c for sig, c in t["problems"].items() if t["examples"][sig][2])
    print(f"fedlang fuzz: {t['cases']} cases (seed {a.seed!r}), {wall:.0f} s wall, "
          f"{t['cases'] / wall:.1f} cases/s ({a.jobs} process{'es' if a.jobs > 1 else ''})"
          + (f"; {cpu:.0f} s CPU, {t['cases'] / cpu:.1f} cases per CPU second" if cpu else ""))
    print("  by kind:     " + ", ".join(f"{k} {v}" for k, v in sorted(t["kinds"].items())))
    print("  outcomes:    " + ", ".join(f"{k} {t['outcomes'].get(k, 0)}"
                                        for k in ("ok", "error", "usage", "internal", "hang")))
    print(f"  tracebacks:  {t['tracebacks']}    unsafe programs: {t['unsafe']}    "
          f"slow (> {a.slow:g} s of CPU): {t['slow']}    slowest check: {t['max_seconds']:.1f} s of CPU")
    print(f"  problems:    {sum(t['problems'].values())} in {len(t['problems'])} signatures "
          f"({known} of classes owned by other work)")
    for sig, count in t["problems"].most_common():
        case_no, example, owner = t["examples"][sig]
        print(f"    {count:6d}  {sig}\n            e.g. case {case_no}: {example}"
              + (f"\n            open, owned by {owner}" if owner else ""))
    summary = {k: v for k, v in t.items() if k != "saved"}
    summary.update(wall_seconds=wall, cpu_seconds=cpu, cases_per_second=t["cases"] / wall, jobs=a.jobs, seed=a.seed,
                   saved=len(t["saved"]))
    (Path(a.out) / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"  reproducers: {len(t['saved'])} in {a.out}/ (replay one: python bench/fuzz.py --replay N --seed {a.seed})")


if __name__ == "__main__":
    main()
