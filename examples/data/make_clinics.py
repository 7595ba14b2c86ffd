#!/usr/bin/env python3
"""Generate examples/data/clinics.csv, the small data set of examples/csv_natural.fed.

Six clinics (the natural clients) record five measurements per patient and a triage level
0 (routine), 1 (follow-up) or 2 (urgent). The level depends on the measurements through one
shared rule, but each clinic sees a different population (older or younger patients, more
or fewer urgent cases) and a different number of patients: a small, realistic non-IID,
unbalanced federated data set.

Deterministic (a fixed seed, NumPy only): running it again rewrites the identical file.

    python examples/data/make_clinics.py
"""

from pathlib import Path

import numpy as np

SEED = 20240611
OUT = Path(__file__).with_name("clinics.csv")

# clinic: (patients, mean age, mean BMI shift, how much sicker than average)
CLINICS = {
    "harbor": (110, 62, 2.0, 0.6),
    "hillside": (85, 45, -1.0, -0.4),
    "riverside": (70, 55, 0.5, 0.2),
    "northgate": (60, 70, 1.0, 0.9),
    "old_town": (45, 38, -2.0, -0.8),
    "airport": (30, 50, 0.0, 0.0),
}
COLUMNS = ["clinic", "age", "bmi", "systolic_bp", "glucose", "heart_rate", "triage"]


def generate(rng: np.random.Generator) -> list[list[str]]:
    rows = []
    for clinic, (n, mean_age, bmi_shift, sickness) in CLINICS.items():
        age = np.clip(rng.normal(mean_age, 12, n), 18, 95)
        bmi = np.clip(rng.normal(26 + bmi_shift, 4, n), 16, 50)
        systolic = 100 + 0.6 * age + rng.normal(10 * sickness, 14, n)
        glucose = 80 + 1.5 * (bmi - 25) + rng.normal(15 * sickness, 18, n)
        heart_rate = rng.normal(72 + 4 * sickness, 10, n)
        # One shared rule: a latent risk score from the standardised measurements, plus noise.
        score = (0.9 * (age - 55) / 15 + 0.5 * (bmi - 26) / 4 + 1.1 * (systolic - 133) / 18
                 + 1.2 * (glucose - 90) / 22 + 0.6 * (heart_rate - 72) / 10
                 + rng.normal(0, 0.8, n))
        triage = np.digitize(score, [-0.6, 1.4])  # 0, 1 or 2
        for i in range(n):
            rows.append([clinic, f"{age[i]:.0f}", f"{bmi[i]:.1f}", f"{systolic[i]:.0f}",
                         f"{glucose[i]:.0f}", f"{heart_rate[i]:.0f}", str(triage[i])])
    # Interleave the clinics' rows, as a real export might; the partition regroups them.
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def csv_text() -> str:
    """The whole file: a header row, then one row per patient."""
    rows = generate(np.random.default_rng(SEED))
    return ",".join(COLUMNS) + "\n" + "".join(",".join(row) + "\n" for row in rows)


def main() -> None:
    text = csv_text()
    OUT.write_text(text)
    rows = [line.split(",") for line in text.splitlines()[1:]]
    labels = np.array([int(r[-1]) for r in rows])
    print(f"wrote {OUT} ({len(rows)} patients, {len(CLINICS)} clinics, "
          f"triage levels {np.bincount(labels, minlength=3).tolist()})")


if __name__ == "__main__":
    main()
