"""Learning-rate schedules over rounds (copied verbatim into emitted programs).

A schedule is a tuple, as the emitted program's constants hold it:

    ("exponential_decay", initial, decay_rounds, rate, staircase)
        initial · rate^((round − 1) / decay_rounds) — Keras' ExponentialDecay with rounds as
        steps (the source document's ExponentialDecay(0.01, 10, 0.96)); staircase: integer division
    ("warmup", target, rounds, start)
        linear from start (round 1) to target (round `rounds` + 1), then target
    ("cosine", initial, rounds, minimum)
        minimum + (initial − minimum) · (1 + cos(π · (round − 1) / rounds)) / 2, then minimum
    ("step", initial, every, factor)
        initial · factor^floor((round − 1) / every)

The program sets the rate before each round with the process's set_hparams (TFF then hands it
to every client's optimizer, or to the server optimizer).
"""

import math


def learning_rate_at(schedule, round_num):
    """The learning rate of ``schedule`` in round ``round_num`` (1-based)."""
    kind, t = schedule[0], round_num - 1
    if kind == "exponential_decay":
        _, initial, decay_rounds, rate, staircase = schedule
        power = t // decay_rounds if staircase else t / decay_rounds
        return initial * rate**power
    if kind == "warmup":
        _, target, rounds, start = schedule
        return target if t >= rounds else start + (target - start) * t / rounds
    if kind == "cosine":
        _, initial, rounds, minimum = schedule
        if t >= rounds:
            return minimum
        return minimum + (initial - minimum) * (1 + math.cos(math.pi * t / rounds)) / 2
    if kind == "step":
        _, initial, every, factor = schedule
        return initial * factor ** (t // every)
    raise ValueError(f"learning_rate_at: unknown schedule {kind!r}")


REQUIRES: dict[str, tuple[str, ...]] = {
    "learning_rate_at": (),
}
