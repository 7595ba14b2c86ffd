"""Property-based fuzzing of fedlang's front end, shared by tests/frontend and bench/fuzz.py.

`specgen` writes specs (grammar-aware generation from grammar/fedlang.lark and
fedlang/registry.py, plus a mutator over the repository's specs) and odd data files;
`oracle` runs one case through the `fedlang` command in-process and checks its properties.
"""
