#!/usr/bin/env python3
"""Privacy accounting cost: fedlang/lib/privacy.py against dp-accounting called directly.

For T in {100, 1000} rounds and both accountants (RDP, PLD) it times
  epsilon_after           vs a fresh dp-accounting accountant composing the T-round event,
  epsilon_per_round       vs a fresh accountant per round t = 1..T (timed on 10 rounds spread
                          over 1..T and scaled to T rounds: the naive way to print epsilon
                          each round),
  solve_noise_multiplier  (fedlang/check/accounting.py) vs dp_accounting.calibrate_dp_mechanism (Brent's method, tol 1e-3,
                          bracket [0.5, 5]: a lower end near 0 makes PLD evaluations take
                          minutes and gigabytes),
and prints the ratio ours / baseline (below 1: faster than the baseline). It also prints how
far the PLD epsilon with fedlang's discretization interval is above a 3 times finer one.
Default setting: the TFF DP tutorial (population 3383, 120 clients per round, z = 1.2,
delta = 1e-5). Run: `python bench/privacy_accounting.py [--population N --clients M ...]`.
"""

import argparse
import sys
import time
from pathlib import Path

import dp_accounting
from dp_accounting import pld, rdp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fedlang.check import accounting  # noqa: E402
from fedlang.lib import privacy  # noqa: E402


def timed(fn, repeat):
    """(result, fastest CPU seconds) of fn() over `repeat` runs.

    CPU time of this process, not wall time: stable when other processes share the machine.
    """
    times, result = [], None
    for _ in range(repeat):
        start = time.process_time()
        result = fn()
        times.append(time.process_time() - start)
    return result, min(times)


def event(z, q, rounds):
    inner = dp_accounting.GaussianDpEvent(z)
    if q < 1:
        inner = dp_accounting.PoissonSampledDpEvent(q, inner)
    return dp_accounting.SelfComposedDpEvent(inner, rounds)


def fresh(accountant, interval):
    if accountant == "rdp":
        return rdp.RdpAccountant()
    return pld.PLDAccountant(value_discretization_interval=interval)


def direct_epsilon(accountant, interval, z, q, rounds, delta):
    acc = fresh(accountant, interval)
    acc.compose(event(z, q, rounds))
    return acc.get_epsilon(delta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=3383)
    parser.add_argument("--clients", type=int, default=120)
    parser.add_argument("--z", type=float, default=1.2)
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--rounds", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    z, delta = args.z, args.delta
    q = privacy.sampling_rate(args.clients, args.population)
    interval = privacy._pld_discretization(z, q)
    print(f"population {args.population}, {args.clients} clients per round (q = {q:.5g}), "
          f"z = {z}, delta = {delta:g}; PLD discretization interval {interval:.3g}")
    header = (f"{'accountant':>10} {'T':>5} {'function':<24} {'ours cpu s':>10} "
              f"{'baseline':>9} {'ratio':>7}  notes")
    print(header)
    print("-" * len(header))

    for accountant in ("rdp", "pld"):
        for rounds in args.rounds:
            def row(name, ours, base, notes=""):
                print(f"{accountant:>10} {rounds:>5} {name:<24} {ours:10.3f} {base:9.3f} "
                      f"{ours / base:7.2f}  {notes}")

            epsilon, t_ours = timed(
                lambda: privacy.epsilon_after(rounds, z, q, delta, accountant), args.repeat)
            expected, t_base = timed(
                lambda: direct_epsilon(accountant, interval, z, q, rounds, delta), args.repeat)
            notes = f"eps {epsilon:.4f} (direct {expected:.4f})"
            if accountant == "pld":
                finer = direct_epsilon("pld", interval / 3, z, q, rounds, delta)
                notes += f"; {100 * (epsilon - finer) / finer:.3f}% above interval/3"
            row("epsilon_after", t_ours, t_base, notes)

            per_round, t_ours = timed(
                lambda: privacy.epsilon_per_round(rounds, z, q, delta, accountant), 1)
            sample = sorted({max(1, round(rounds * (k + 1) / 10)) for k in range(10)})
            _, t_sample = timed(
                lambda: [direct_epsilon(accountant, interval, z, q, t, delta) for t in sample], 1)
            gap = abs(per_round[-1] - epsilon) / epsilon
            row("epsilon_per_round", t_ours, t_sample * rounds / len(sample),
                f"baseline: fresh accountant per round; last vs epsilon_after rel {gap:.1e}")

            target = epsilon
            solved, t_ours = timed(
                lambda: accounting.solve_noise_multiplier(target, rounds, q, delta, accountant), 1)
            calibrated, t_base = timed(
                lambda: dp_accounting.calibrate_dp_mechanism(
                    lambda: fresh(accountant, interval),
                    lambda noise: event(noise, q, rounds),
                    target, delta,
                    bracket_interval=dp_accounting.ExplicitBracketInterval(0.5, 5.0),
                    tol=1e-3),
                1)
            row("solve_noise_multiplier", t_ours, t_base,
                f"target eps {target:.4f}: z = {solved} (calibrate: {calibrated:.4f})")


if __name__ == "__main__":
    main()
