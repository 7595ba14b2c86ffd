"""Hostile but legal-looking inputs to `check`: no internal error, no hang, bounded memory (issue 8).

bench/check_limits.py measures the same worst cases at full size (time, peak RSS); these are
small fixed versions that run in `make test`.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap
import time

import pytest

from fedlang.check.accounting import account, epsilon_function, last_round_within
from fedlang.diagnostics import Diagnostic, Source, Span, SpecError, render_all
from fedlang.lib import privacy
from fedlang.pipeline import compile_source

from ..conftest import REPO


def spec(privacy_block: str = "", data: str = "partition iid(clients = 50)", train: str = "rounds 5",
         head: str = "seed 1") -> str:
    return textwrap.dedent("""\
        {head}
        model m {{
          input [64]
          dense 10 softmax
          loss sparse_categorical_crossentropy
        }}
        data digits {{
          source sklearn.digits
          {data}
        }}
        train fedavg {{
          {train}
        }}
        {privacy}
        """).format(head=head, data=data, train=train, privacy=privacy_block)


def codes(text: str) -> list[str]:
    """Error codes of checking `text` ([] when it checks)."""
    try:
        compile_source(Source("t.fed", text), REPO)
    except SpecError as exc:
        return [d.code for d in exc.diagnostics if d.severity == "error"]
    return []


def checked_privacy(text: str):
    return compile_source(Source("t.fed", text), REPO).checked.privacy


# ------------------------------------------------------------------ accountant edge values


@pytest.mark.parametrize("noise", ["0.00001", "1e300", "2000000"])
def test_noise_outside_the_accountants_range_is_a_positional_error(noise):
    assert codes(spec(f"privacy {{\n noise {noise}\n clip 1.0\n}}")) == ["E206"]


def test_noise_at_the_edges_of_the_range_is_accounted():
    tiny = checked_privacy(spec("privacy {\n noise 0.01\n clip 1.0\n}"))
    huge = checked_privacy(spec("privacy {\n noise 1000000\n clip 1.0\n}"))
    assert tiny.epsilon == privacy.epsilon_after(5, 0.01, tiny.sampling_rate, 1e-5)
    assert huge.epsilon == 0.0


def test_a_billion_clients_is_accounted_not_an_internal_error():
    """q = 1e-8: dp-accounting's RDP came out as -4e-16 and its compute_epsilon refused it."""
    p = checked_privacy(spec("privacy {\n noise 1.0\n clip 1.0\n population 1000000000\n}"))
    assert p.epsilon == 0.0 and p.sampling_rate == 50 / 1e9
    auto = checked_privacy(spec("privacy {\n noise auto\n epsilon 1\n clip 1.0\n population 1000000000\n}"))
    assert auto.epsilon <= 1 and 0.01 <= auto.noise_multiplier <= 1000


def test_integers_beyond_float_range_are_a_positional_error():
    assert codes(spec(train="rounds 1" + "0" * 400)) == ["E206"]
    assert codes(spec(data="partition iid(clients = 50)\n  batch 100000000000000000000")) == ["E206"]


def test_unicode_digits_are_not_numbers():
    assert codes(spec(train="rounds ٣")) == ["E101"]
    assert codes(spec(train="rounds ３")) == ["E101"]  # fullwidth 3


def test_a_float32_overflowing_scale_is_refused():
    assert codes(spec(data="partition iid(clients = 50)\n  scale 1e300")) == ["E206"]
    assert codes(spec(data="partition iid(clients = 50)\n  scale 1e38")) == []


# ------------------------------------------------------------------ ε in O(log rounds)


@pytest.mark.parametrize("z, q, rounds, target", [
    (1.0, 0.2, 150, 5.0), (0.8, 0.01, 400, 1.0), (2.0, 1.0, 60, 3.0), (1.1, 0.05, 300, 100.0),
    (0.7, 0.3, 90, 0.5),
])
def test_rdp_crossing_equals_counting_the_per_round_list(z, q, rounds, target):
    per_round = privacy.epsilon_per_round(rounds, z, q, 1e-5, "rdp")
    got = account(rounds, z, q, 1e-5, "rdp", target)
    assert got.epsilon == per_round[-1] and got.first == per_round[0]
    assert got.last_within == sum(e <= target for e in per_round)


def test_pld_crossing_equals_the_runs_last_round_within():
    z, q, rounds, target = 1.0, 0.2, 40, 6.0
    got = account(rounds, z, q, 1e-5, "pld", target)
    assert got.last_within == privacy.last_round_within(target, rounds, z, q, 1e-5, "pld")
    assert got.epsilon == pytest.approx(privacy.epsilon_per_round(rounds, z, q, 1e-5, "pld")[-1], rel=1e-8)


def test_crossing_search_uses_few_evaluations():
    calls = []
    rdp = epsilon_function(1.0, 0.01, 1e-5, "rdp")

    def counted(t):
        calls.append(t)
        return rdp(t)

    within = last_round_within(counted, 1_000_000, 8.0, {})
    assert rdp(within) <= 8.0 < rdp(within + 1)
    assert len(calls) <= 45


def test_a_million_rounds_with_privacy_checks_quickly():
    start = time.process_time()
    p = checked_privacy(spec("privacy {\n noise 1.0\n clip 1.0\n epsilon 50\n on_exceed stop\n}",
                             train="rounds 1000000 clients_per_round 10"))
    assert time.process_time() - start < 10  # was minutes (one accountant call per round)
    assert p.epsilon == privacy.epsilon_after(1_000_000, 1.0, 10 / 50, 1e-5)
    assert 0 < p.rounds_to_run < 1_000_000


# ------------------------------------------------------------------ parsing and rendering are linear


def _child_peak_rss_mb(code: str) -> float:
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def test_blank_lines_do_not_take_memory_per_line():
    """The newline token was `(\\n…)+`: Python's re kept a frame per repetition (700 MB for 900 KB)."""
    code = ("from fedlang.diagnostics import Source; from fedlang.parse import parse_source\n"
            f"parse_source(Source('t.fed', {spec()!r}.replace('seed 1\\n', 'seed 1\\n' + '\\n' * 1_000_000)))")
    assert _child_peak_rss_mb(code) < 300


def test_rendering_many_diagnostics_splits_the_source_once():
    lines = 20_000
    source = Source("t.fed", "dence 10\n" * lines)
    diagnostics = [Diagnostic("E201", "unknown layer 'dence'", Span(i, 1, i, 6)) for i in range(1, lines + 1)]
    start = time.process_time()
    text = render_all(source, diagnostics)
    assert time.process_time() - start < 10  # quadratic: 20,000 splits of a 20,000-line text
    assert text.count("error[E201]") == lines
