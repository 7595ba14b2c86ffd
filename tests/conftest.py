"""Shared test settings: the repository root, and golden-file regeneration."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UPDATE_GOLDEN = os.environ.get("FEDLANG_UPDATE_GOLDEN") == "1"


@pytest.fixture
def in_repo(monkeypatch):
    """Run the test from the repository root (spec paths in messages are relative to it)."""
    monkeypatch.chdir(REPO)
    return REPO
