"""The runnable examples in the package's docstrings work.

Every module listed has at least one example (a module without one would make a test that can
never fail, so it is not listed)."""

import doctest
import importlib

import pytest

MODULES = [
    "sharpjac",
    "sharpjac.curvature",
    "sharpjac.data",
    "sharpjac.jacobians",
    "sharpjac.plotting",
    "sharpjac.claims",
    "sharpjac.scorecard",
    "sharpjac.experiments",
    "sharpjac.request_log",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no docstring example; give it one or leave it out of MODULES"
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
