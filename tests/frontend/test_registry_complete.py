"""Every registered construct has every hook: a new name cannot be half-added.

Layers, sources, partitions, optimizers, aggregators, step operators and blocks are definition
objects (fedlang/constructs, registry.BLOCK_DEFS); algorithms are checked against the code that
lowers them.
"""

import ast as pyast
import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from fedlang import ast, checked, registry
from fedlang.constructs.operators import OPERATORS, STEP_NAMES, Operator
from fedlang.constructs.layers import LAYER_DEFS, LayerDef
from fedlang.constructs.partitions import PARTITION_DEFS, PartitionDef
from fedlang.constructs.sources import SOURCE_DEFS, SourceDef
from fedlang.constructs.training import AGGREGATOR_DEFS, OPTIMIZER_BY_SIDE, AggregatorDef, OptimizerDef
from fedlang.parse import ToAst
from fedlang.plan import Assign, PyAttr, PyCall, PyRef

from ..conftest import REPO

LIB = REPO / "fedlang" / "lib"
LANGUAGE = (REPO / "docs" / "language.md").read_text()
GRAMMAR = (REPO / "grammar" / "fedlang.lark").read_text()


def _lib_names(module: str) -> set[str]:
    tree = pyast.parse((LIB / module).read_text())
    return {n.name for n in tree.body if isinstance(n, (pyast.FunctionDef, pyast.ClassDef))}


def _hooks(definition) -> dict[str, object]:
    return {f.name: getattr(definition, f.name) for f in dataclasses.fields(definition)
            if "Callable" in str(f.type)}


@pytest.mark.parametrize("layer", LAYER_DEFS, ids=lambda d: d.name)
def test_layer_has_every_hook(layer: LayerDef):
    hooks = _hooks(layer)
    assert set(hooks) == {"shape", "weights", "non_trainable", "keras"}
    assert all(callable(h) for h in hooks.values())
    assert layer.input_dtype in ("float32", "int64")
    assert registry.LAYERS[layer.name] is layer.form
    assert f"`{layer.name}" in LANGUAGE, f"docs/language.md does not document layer {layer.name}"


def test_layer_hooks_agree_on_a_real_model():
    """Each layer's shape, weights and Keras hooks run on its own example (a shape it accepts)."""
    from fedlang.diagnostics import Source
    from fedlang.pipeline import compile_source

    inputs = {"dense": "[64]", "dropout": "[64]", "flatten": "[8, 8, 1]", "reshape": "[64]",
              "conv2d": "[8, 8, 1]", "maxpool": "[8, 8, 1]", "avgpool": "[8, 8, 1]", "global_avgpool": "[8, 8, 1]",
              "layer_norm": "[64]", "batch_norm": "[8, 8, 1]", "activation": "[64]", "embedding": "[8]",
              "lstm": "[8, 8]", "gru": "[8, 8]", "conv1d": "[8, 8]", "maxpool1d": "[8, 8]"}
    for layer in LAYER_DEFS:
        shape = inputs.get(layer.name)
        assert shape is not None, f"add an input shape for layer {layer.name} to this test"
        reshape = "" if shape == "[64]" else f"reshape {shape}"
        data = f" source sklearn.digits\n partition iid(clients = 4)\n {reshape}\n"
        classes = 10
        if layer.input_dtype != "float32":  # token ids
            data, classes = " source markov(vocab = 20, clients = 4, length = 20)\n", 20
        spec = (f"seed 1\nmodel m {{\n input {shape}\n {layer.form.example}\n flatten\n dense {classes} softmax\n"
                f" loss sparse_categorical_crossentropy\n}}\n"
                f"data {{\n{data}}}\n"
                f"train fedavg {{ rounds 1 }}\n")
        compiled = compile_source(Source("t.fed", spec), base_dir=REPO)
        model = compiled.checked.model
        assert model.layers[0].kind == layer.name
        keras = compiled.plan.layers[0]
        assert isinstance(keras, PyCall) and keras.func.startswith("tf.keras.layers.")
        assert model.param_count == sum(c.params for c in model.layers)


@pytest.mark.parametrize("source", SOURCE_DEFS, ids=lambda d: d.name)
def test_source_has_every_hook(source: SourceDef):
    hooks = _hooks(source)
    assert callable(hooks.pop("stream")) == source.streamed  # a streamed source counts and reads each file
    assert set(hooks) == {"facts", "replay", "load"}
    assert all(callable(h) for h in hooks.values())
    assert registry.SOURCES[source.name] is source.form
    for module, names in source.helpers:
        missing = set(names) - _lib_names(module)
        assert not missing, f"{source.name} copies {missing} from fedlang/lib/{module}, which does not define them"
    assert source.name in LANGUAGE, f"docs/language.md does not document source {source.name}"
    if source.path_option is not None:
        assert source.form.param(source.path_option) is not None


@pytest.mark.parametrize("source", SOURCE_DEFS, ids=lambda d: d.name)
def test_source_load_binds_the_examples(source: SourceDef):
    """The loader lowering binds x and y, client_ids when the source has them, and its own test
    split; a streamed source binds its files."""
    from fedlang.checked import Choice
    from fedlang.diagnostics import Span

    args = {p.name: ("data/x" if p.required else p.default) for p in source.form.params}
    statements = source.load(Choice(source.name, args, Span(1, 1, 1, 2)), "/data/x")
    assert all(isinstance(s, Assign) for s in statements)
    bound = set(re.findall(r"[a-z_]+", " ".join(s.targets for s in statements)))
    if source.streamed:  # one client per file: the loader binds the files, tf.data reads them later
        assert bound == {"files"} and not source.test_split
        return
    assert {"x", "y"} <= bound
    assert source.test_split == ({"x_test", "y_test"} <= bound)


@pytest.mark.parametrize("block", registry.BLOCK_DEFS, ids=lambda b: b.keyword)
def test_block_has_every_hook(block: registry.BlockDef):
    assert f'"{block.keyword}"' in GRAMMAR, f"the grammar has no `{block.keyword}`"
    assert inspect.isclass(block.node) and block.node.__module__ == ast.__name__
    assert hasattr(ToAst, block.keyword), f"the parser builds no node for {block.keyword}"
    assert callable(block.check_pass())
    assert block.config is None or (dataclasses.is_dataclass(block.config)
                                    and block.config.__module__ == checked.__name__)
    assert re.search(rf"^#+ .*{re.escape(block.docs)}", LANGUAGE, re.M), f"no docs section '{block.docs}'"
    for param in block.settings or ():
        assert f"`{param.name}" in LANGUAGE, f"docs/language.md does not document {block.keyword} {param.name}"


def test_every_ast_item_is_a_block():
    items = set(ast.Item.__args__)
    assert items == {b.node for b in registry.BLOCK_DEFS}


def _example_choice(form) -> "checked.Choice":
    from fedlang.diagnostics import Span

    args = {p.name: (p.low if p.low is not None else 1) if p.required else p.default for p in form.params}
    return checked.Choice(form.name, args, Span(1, 1, 1, 2))


@pytest.mark.parametrize("partition", PARTITION_DEFS, ids=lambda d: d.name)
def test_partition_has_every_hook(partition: PartitionDef):
    """Its split is a fedlang/lib/data.py call on y, client_ids and rng (the program writes it and
    check evaluates it), and it says how many examples it needs; the docs describe it."""
    assert registry.PARTITIONS[partition.name] is partition.form
    choice = _example_choice(partition.form)
    split = partition.split(choice)
    assert isinstance(split, PyCall) and split.func in _lib_names("data.py")
    refs = {v.name for _, v in split.args if isinstance(v, PyRef)}
    assert refs <= {"y", "client_ids", "rng"} and ("client_ids" in refs) == partition.needs_client_ids
    needed = partition.examples_needed(choice)
    assert needed is None or (isinstance(needed[0], int) and needed[1] and needed[2])
    assert f"`{partition.name}" in LANGUAGE, f"docs/language.md does not document partition {partition.name}"


@pytest.mark.parametrize("aggregator", AGGREGATOR_DEFS, ids=lambda d: d.name)
def test_aggregator_has_every_hook(aggregator: AggregatorDef):
    """It lowers to a fedlang/lib/federated.py factory called with its options; the docs describe it."""
    assert registry.ROBUST_AGGREGATORS[aggregator.name] is aggregator.form
    assert aggregator.factory in _lib_names("federated.py")
    choice = _example_choice(aggregator.form)
    call = aggregator.build(dict(choice.args))
    assert call.func == aggregator.factory and {k for k, _ in call.args} == {p.name for p in aggregator.form.params}
    assert (aggregator.name in registry.GATHERING_AGGREGATORS) == aggregator.gathers
    assert f"`{aggregator.name}" in LANGUAGE, f"docs/language.md does not document aggregator {aggregator.name}"


_TFF_OPTIMIZERS = {"build_sgdm", "build_adam", "build_yogi", "build_adagrad", "build_rmsprop", "build_adafactor"}


@pytest.mark.parametrize("side, optimizer", [(side, d) for side, defs in OPTIMIZER_BY_SIDE.items()
                                             for d in defs.values()], ids=lambda v: getattr(v, "name", v))
def test_optimizer_has_every_hook(side: str, optimizer: OptimizerDef):
    """It lowers to a tff.learning.optimizers builder (TFF 0.87 has these), with a learning rate."""
    forms = registry.CLIENT_OPTIMIZERS if side == "client" else registry.SERVER_OPTIMIZERS
    assert forms[optimizer.name] is optimizer.form
    options = {p.name: (0.1 if p.required else p.default) for p in optimizer.form.params}
    call = optimizer.build(options)
    module, _, builder = call.func.rpartition(".")
    assert module == "tff.learning.optimizers" and builder in _TFF_OPTIMIZERS
    assert dict(call.args)["learning_rate"] == options["learning_rate"]
    assert f"`{optimizer.name}" in LANGUAGE


@pytest.mark.parametrize("block", registry.BLOCK_DEFS, ids=lambda b: b.keyword)
def test_block_names_its_lowering(block: registry.BlockDef):
    assert callable(block.lowering_hook()), f"fedlang/lower.py has no {block.lowering} for {block.keyword}"


def _names_in(value) -> set[str]:
    """Every function and reference name in a lowered call tree."""
    if isinstance(value, PyRef):
        return {value.name}
    if isinstance(value, PyAttr):
        return _names_in(value.value)
    if isinstance(value, PyCall):
        func = {value.func} if isinstance(value.func, str) else _names_in(value.func)
        return func | {n for _, a in value.args for n in _names_in(a)}
    if isinstance(value, tuple):
        return {n for v in value for n in _names_in(v)}
    return set()


@pytest.mark.parametrize("operator", OPERATORS.values(), ids=lambda o: o.name)
def test_operator_has_every_hook(operator: Operator):
    """Its helpers are fedlang/lib/federated.py definitions (the table is checked against the file
    here; lowering never reads it), and its lowering, at either placement, refers to its operands,
    `dim`, TFF and its helpers only: the names fedlang/lower.py keeps spec value names clear of."""
    assert callable(operator.rule) and callable(operator.lower)
    assert set(operator.helpers) <= _lib_names("federated.py"), operator.name
    assert f"`{operator.name}(" in LANGUAGE, f"docs/language.md does not document operator {operator.name}"
    operands = [PyRef("operand_a"), PyRef("operand_b")][:operator.operands]
    options = {p.name: (p.low if p.low is not None else 1.0) if p.required else p.default for p in operator.options}
    for at_server in (False, True):
        value = operator.lower(operands, options, at_server)
        names = _names_in(value) - {r.name for r in operands}
        outside = {n for n in names if not n.startswith("tff.") and n not in set(operator.helpers) | {"dim"}}
        assert not outside, f"{operator.name} lowers to {outside}, which are not among its helpers"
        assert names - {"dim"} <= {n for n in names if n.startswith("tff.")} | STEP_NAMES
        literals = [a for _, a in getattr(value, "args", ()) if not isinstance(a, (PyRef, PyCall, PyAttr, tuple))]
        assert not literals or set(literals) <= set(options.values())


def test_lowering_does_not_read_the_lib():
    """What lowering knows about fedlang/lib/federated.py is the operator table (data), not the file."""
    import fedlang.lower

    source = inspect.getsource(fedlang.lower)
    assert "federated.py\")" not in source and "read_text" not in source and "ast.parse" not in source


def test_algorithms_lower_to_a_process():
    from fedlang.lower import ALGORITHM_BUILDERS

    assert set(ALGORITHM_BUILDERS) == set(registry.ALGORITHMS)


def test_every_file_format_has_its_counter_and_reader():
    from fedlang.constructs.sources import FILE_FORMATS

    assert set(FILE_FORMATS) == {".csv", ".npz", ".tfrecord"}
    for count, _, read, _ in FILE_FORMATS.values():
        assert count in _lib_names("files.py") and read in _lib_names("streams.py")
