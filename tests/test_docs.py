"""The runnable examples in the package's docstrings work."""

import doctest
import importlib

import pytest

MODULES = [
    "sharpjac",
    "sharpjac.curvature",
    "sharpjac.data",
    "sharpjac.jacobians",
    "sharpjac.theory",
    "sharpjac.training",
    "sharpjac.analysis",
    "sharpjac.plotting",
    "sharpjac.claims",
    "sharpjac.scorecard",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
