"""`compress topk(fraction, threshold)`: the bytes `plan` counts and the simulation's time model
uses (8 bytes per kept entry: a float32 value and an int32 index), and the aggregator it lowers to."""

from pathlib import Path

from fedlang.diagnostics import Source
from fedlang.pipeline import compile_source
from fedlang.report import expected_conditions

ROOT = Path(__file__).resolve().parents[2]


def test_topk_bytes_and_aggregator():
    text = (ROOT / "examples" / "sparse_digits.fed").read_text()
    compiled = compile_source(Source("sparse.fed", text))
    comm = compiled.plan.communication
    # 64x128 = 8192 -> 820 kept, 128 -> 13, 128x10 = 1280 -> 128, 10 -> 1; plus the example weight
    assert comm["up"] == 8 * (820 + 13 + 128 + 1) + 4
    assert comm["up_uncompressed"] == 4 * (8192 + 128 + 1280 + 10) + 4
    program = compiled.program_bytes().decode()
    assert "top_k_sum_factory(0.1, threshold=0)" in program and "class TopKEncodingStage" in program
    kept_small = compile_source(Source("s.fed", text.replace("topk(fraction = 0.1)", "topk(fraction = 0.1, threshold = 200)")))
    assert kept_small.plan.communication["up"] == 8 * (820 + 128) + 4 * (128 + 10) + 4


def test_topk_time_model_uses_the_sparse_bytes():
    text = (ROOT / "examples" / "sparse_digits.fed").read_text().replace(
        "evaluate {", "simulation { speed 0.0001  bandwidth 0.1 }\nevaluate {")
    sparse, dense = (compile_source(Source("s.fed", t)) for t in (text, text.replace("compress topk(fraction = 0.1)", "")))
    sparse, dense = (expected_conditions(c.checked, c.plan) for c in (sparse, dense))
    assert sparse["seconds_median"] < dense["seconds_median"]


def test_topk_keeps_the_per_client_path():
    """The fused path has no model aggregator: a spec with compress topk must not take it."""
    from fedlang.execution import fused_blocker

    compiled = compile_source(Source("s.fed", (ROOT / "examples" / "sparse_digits.fed").read_text()))
    assert "top-k" in fused_blocker(compiled.checked)
    program = compiled.program_bytes().decode()
    assert "model_aggregator=measure_update_norms(build_aggregator())" in program and "top_k_sum_factory(0.1" in program
