"""Parse → check → lower on valid specs: the meaning the front end gives each construct."""

import ast as pyast
from pathlib import Path

import pytest

from fedlang import ast
from fedlang.diagnostics import Source, SpecError
from fedlang.emit import py
from fedlang.parse import parse_source
from fedlang.pipeline import compile_source

BASE = """
experiment "t"
seed 5
model m {
  input [64]
  dense 10 softmax
  loss sparse_categorical_crossentropy
  metrics [accuracy]
}
data d {
  source sklearn.digits
  partition iid(clients = 10)
  test holdout(0.2)
}
train fedavg { rounds 3 }
"""


def compile_text(text: str, name: str = "t.fed", base_dir: Path | None = None):
    return compile_source(Source(name, text), base_dir or Path("."))


def with_block(block: str, replacement: str) -> str:
    """BASE with one block (by its first line) replaced."""
    lines = BASE.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(block))
    end = next(i for i in range(start, len(lines)) if lines[i].rstrip().endswith("}"))
    return "\n".join(lines[:start] + replacement.strip().splitlines() + lines[end + 1:]) + "\n"


# ---------------------------------------------------------------- parsing


def test_ast_carries_spans_and_typed_values():
    spec = parse_source(Source("t.fed", BASE))
    model = next(i for i in spec.items if isinstance(i, ast.ModelBlock))
    dense = next(i for i in model.items if isinstance(i, ast.Layer))
    assert dense.kind.name == "dense"
    assert (dense.span.line, dense.span.column) == (6, 3)
    assert [a.value for a in dense.args] == [ast.Number(10, "10", dense.args[0].span),
                                             ast.Name(("softmax",), dense.args[1].span)]


def test_numbers_strings_and_several_settings_per_line():
    text = with_block("data", """
data d {
  source csv("it's \\"quoted\\".csv", label = 'y')   partition iid(clients = 2)
  batch 8 shuffle 1e2 test holdout(.5)
}""")
    spec = parse_source(Source("t.fed", text))
    data = next(i for i in spec.items if isinstance(i, ast.DataBlock))
    keys = [s.key.name for s in data.settings]
    assert keys == ["source", "partition", "batch", "shuffle", "test"]
    source = data.settings[0].value
    assert source.args[0].value.value == 'it\'s "quoted".csv'
    assert source.args[1].key.name == "label" and source.args[1].value.value == "y"
    assert data.settings[3].value.value == 100.0 and isinstance(data.settings[3].value.value, float)
    assert data.settings[4].value.args[0].value.value == 0.5


def test_crlf_comments_and_missing_final_newline():
    text = BASE.replace("\n", "  # note\r\n").rstrip("# note\r\n ")
    assert compile_text(text).checked.train.rounds == 3


# ---------------------------------------------------------------- checking: defaults and facts


def test_defaults_fill_in():
    c = compile_text(BASE).checked
    assert c.data.batch == 32 and c.data.shuffle == 0 and c.data.scale is None
    assert c.train.clients_per_round == 10  # all clients
    assert c.train.local_epochs == 1 and c.train.weighting == "examples"
    assert c.train.client_optimizer.name == "sgd" and c.train.client_optimizer["learning_rate"] == 0.02
    assert c.train.server_optimizer["learning_rate"] == 1.0
    assert c.evaluate is None and c.seed == 5


def test_missing_seed_is_a_warning_not_an_error():
    c = compile_text(BASE.replace("seed 5\n", "")).checked
    assert c.seed == 0
    assert "W001" in [w.code for w in c.warnings]


def test_synthetic_defaults_to_its_natural_partition():
    text = with_block("data", "data s {\n  source synthetic(alpha = 0.5, beta = 0.5, devices = 12)\n}")
    text = text.replace("input [64]", "input [60]")
    c = compile_text(text).checked
    assert c.data.partition.name == "natural" and c.data.num_clients == 12
    assert c.data.facts.feature_shape == (60,) and c.data.facts.classes == 10


def test_cnn_shapes_and_parameter_counts():
    text = with_block("model", """
model cnn {
  input [8, 8, 1]
  conv2d 4 relu kernel = 3
  conv2d 6 relu kernel = [2, 2] padding = same
  maxpool 2
  flatten
  dense 10 softmax
  loss sparse_categorical_crossentropy
}""").replace("test holdout(0.2)", "test holdout(0.2)\n  reshape [8, 8, 1]")
    model = compile_text(text).checked.model
    assert [l.output_shape for l in model.layers] == [(6, 6, 4), (6, 6, 6), (3, 3, 6), (54,), (10,)]
    assert [l.params for l in model.layers] == [3 * 3 * 1 * 4 + 4, 2 * 2 * 4 * 6 + 6, 0, 0, 54 * 10 + 10]
    assert model.weight_shapes == ((3, 3, 1, 4), (4,), (2, 2, 4, 6), (6,), (54, 10), (10,))


def test_linear_output_means_logits():
    c = compile_text(BASE.replace("dense 10 softmax", "dense 10")).checked
    assert c.model.from_logits


def test_csv_facts_come_from_the_file(tmp_path):
    (tmp_path / "d.csv").write_text("site,a,b,label\nx,1,2,0\ny,3,4,1\nx,5,6,1\nz,0,0,0\n")
    text = """
model m {
  input [2]
  dense 1 sigmoid
  loss binary_crossentropy
}
data { source csv("d.csv", client = "site") }
train fedavg { rounds 1 clients_per_round 2 }
"""
    c = compile_text(text, base_dir=tmp_path).checked
    assert c.data.num_clients == 3 and c.data.facts.examples == 4 and c.data.facts.classes == 2
    assert c.data.path == str(tmp_path / "d.csv")


# ---------------------------------------------------------------- lowering


@pytest.mark.parametrize("algorithm, settings, builder", [
    ("fedavg", "", "build_weighted_fed_avg"),
    ("fedavg", "weighting uniform", "build_unweighted_fed_avg"),
    ("fedprox", "mu 0.1", "build_weighted_fed_avg"),
    ("fedprox", "mu 0.1 weighting uniform", "build_unweighted_fed_avg"),
    ("fedsgd", "", "build_fed_sgd"),
])
def test_algorithm_lowers_to_tff_builder(algorithm, settings, builder):
    plan = compile_text(BASE.replace("train fedavg { rounds 3 }",
                                     f"train {algorithm} {{ rounds 3 {settings} execution per_client }}")).plan
    assert plan.process.func == f"tff.learning.algorithms.{builder}"
    if algorithm == "fedprox":  # FedProx = FedAvg with the proximal term in the client optimizer
        assert py(dict(plan.process.args)["client_optimizer_fn"]) == (
            "ProximalOptimizer(tff.learning.optimizers.build_sgdm(learning_rate=0.02), mu=0.1)")


@pytest.mark.parametrize("server, expected", [
    ("sgd(learning_rate = 1.0, momentum = 0.9)", "tff.learning.optimizers.build_sgdm(learning_rate=1.0, momentum=0.9)"),
    ("sgd", "tff.learning.optimizers.build_sgdm(learning_rate=1.0)"),
    ("adam(learning_rate = 0.01)",
     "tff.learning.optimizers.build_adam(learning_rate=0.01, beta_1=0.9, beta_2=0.999, epsilon=0.001)"),
    ("yogi", "tff.learning.optimizers.build_yogi(learning_rate=0.01, beta_1=0.9, beta_2=0.999, epsilon=0.001, "
             "initial_preconditioner_value=1e-06)"),
    ("adagrad(0.5)", "tff.learning.optimizers.build_adagrad(learning_rate=0.5, initial_preconditioner_value=0.1, "
                     "epsilon=1e-07)"),
])
def test_server_optimizers(server, expected):
    plan = compile_text(BASE.replace("{ rounds 3 }", f"{{ rounds 3 server_optimizer {server} }}")).plan
    assert py(dict(plan.process.args)["server_optimizer_fn"]) == expected


def test_spec_text_cannot_inject_code(tmp_path):
    """Hostile strings reach the program only as repr'd literals and sanitised comments."""
    evil = r'x\n__import__(\"os\").system(\"touch PWNED\")  # \'\'\' \u2028'
    (tmp_path / "d.csv").write_text("a,label\n1,0\n2,1\n")
    text = f"""
experiment "{evil}"
model m {{
  input [1]
  dense 2 softmax
  loss sparse_categorical_crossentropy
}}
data {{ source csv("{evil}.csv") partition iid(clients = 1) }}
train fedavg {{ rounds 1 }}
"""
    (tmp_path / (evil.encode().decode("unicode_escape") + ".csv")).write_text("a,label\n1,0\n2,1\n")
    compiled = compile_text(text, base_dir=tmp_path)
    program = compiled.program()
    tree = pyast.parse(program)
    calls = [n for n in pyast.walk(tree) if isinstance(n, pyast.Call)
             and isinstance(n.func, pyast.Name) and n.func.id == "__import__"]
    assert calls == []
    constants = {n.targets[0].id: n.value.value for n in tree.body
                 if isinstance(n, pyast.Assign) and isinstance(n.value, pyast.Constant)}
    assert constants["EXPERIMENT"] == compiled.checked.experiment
    assert "\n" in compiled.checked.experiment


@pytest.mark.parametrize("secure", [False, True])
def test_seeded_noise_swaps_only_the_sum_query(secure):
    privacy = "privacy {\n  noise 1.0\n  clip 0.5\n  SEEDED\n}\n" + (
        "aggregation { secure bounds(-1, 1) }\n" if secure else "")
    text = BASE.replace("train fedavg { rounds 3 }", "train fedavg { rounds 3 clients_per_round 5 }") + privacy
    plain = compile_text(text.replace("SEEDED", "")).program()
    seeded_compiled = compile_text(text.replace("SEEDED", "seeded_noise true"))
    seeded = seeded_compiled.program()
    assert seeded_compiled.checked.privacy.seeded_noise and "seeded_noise" not in plain
    query = "SeededGaussianSumQuery(l2_norm_clip=0.5, stddev=NOISE_MULTIPLIER * 0.5, seed=SEED)"
    assert query in seeded and "class SeededGaussianSumQuery(tfp.GaussianSumQuery):" in seeded
    assert "import tensorflow_privacy as tfp" in seeded
    assert "SeededGaussianSumQuery" not in plain
    if secure:
        assert "tfp.GaussianSumQuery(l2_norm_clip=0.5, stddev=NOISE_MULTIPLIER * 0.5)" in plain
        assert seeded.count("record_aggregation_factory=tff.aggregators.SecureSumFactory(") == 1
    else:
        assert "DifferentiallyPrivateFactory.gaussian_fixed(" in plain
        assert "record_aggregation_factory" not in seeded
