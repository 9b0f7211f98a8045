"""The examples in the docstrings run, and print what they say they print."""

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WITH_EXAMPLES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts)
    for folder in ("kit", "training", "export") for path in (ROOT / folder).rglob("*.py")
    if ">>> " in path.read_text(encoding="utf-8"))


def test_some_modules_have_examples():
    assert "kit.layers.self_attention" in WITH_EXAMPLES


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_the_examples_of(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name}"
