"""`python -m fedlang` is the `fedlang` command."""

from .cli import main

main(prog_name="fedlang")
