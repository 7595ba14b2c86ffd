"""One definition object per construct a spec can name.

Each definition carries every hook the compiler needs for it, so adding a construct is adding
one definition (plus its docs, fixtures and tests):

- layers.py: a layer's form, output-shape rule, weight shapes, input dtype and Keras call;
- sources.py: a data source's form, facts, label replay, loader lowering and lib helpers;
- partitions.py: a partition's form, its split (one lib call, written by the program and
  evaluated by check's replay) and the examples it needs;
- training.py: an optimizer's form and TFF builder call; a library aggregator's form, lib
  factory and whether it gathers every update at the server;
- fedlang/registry.py BLOCK_DEFS: a top-level block's keyword, AST node, settings, check pass,
  config type, lowering function and docs section.

`tests/frontend/test_registry_complete.py` fails when a registered name lacks a hook.
"""
