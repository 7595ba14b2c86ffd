"""Everyday tools around the language: the formatter, `explain`, highlighting and the editor vocabulary."""
