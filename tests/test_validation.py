"""Tests of sharpjac.validation: what each validator accepts, what it refuses, and the one-line
message naming the parameter, its value and the accepted values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sharpjac import validation as V


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.int32(1)])
def test_positive_int_accepts_integers_and_returns_int(value):
    out = V.positive_int("n", value)
    assert out == int(value) and type(out) is int


@pytest.mark.parametrize("value", [True, False, 1.5, 2.0, "3", None, np.float64(2.0)])
def test_integers_refuse_bools_floats_and_strings_as_a_type_error(value):
    with pytest.raises(V.InvalidTypeError) as info:
        V.positive_int("n_train", value)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)
    message = str(info.value)
    assert message.startswith(f"n_train={value!r} ") and "integer" in message and "\n" not in message


@pytest.mark.parametrize(("value", "minimum"), [(0, 1), (-1, 0), (2, 3)])
def test_integer_below_minimum_is_a_value_error_naming_the_bound(value, minimum):
    with pytest.raises(ValueError) as info:
        V.positive_int("k", value, minimum=minimum)
    assert not isinstance(info.value, TypeError)
    assert f"k={value}" in str(info.value) and f">= {minimum}" in str(info.value)


def test_integer_bounds_are_inclusive():
    assert V.integer("skip", 0, minimum=0, maximum=3) == 0
    assert V.integer("skip", 3, minimum=0, maximum=3) == 3
    with pytest.raises(ValueError, match=r"skip=4 is invalid; accepted: an integer in \[0, 3\]"):
        V.integer("skip", 4, minimum=0, maximum=3)
    assert V.non_negative_int("seed", 0) == 0
    with pytest.raises(ValueError, match="seed=-1 .*non-negative"):
        V.non_negative_int("seed", -1)


@pytest.mark.parametrize("value", [0.5, 1, np.float32(0.25), 1e300])
def test_positive_accepts_finite_positive_numbers(value):
    out = V.positive("lr", value)
    assert out == float(value) and type(out) is float


@pytest.mark.parametrize("value", [0, 0.0, -1e-300, math.inf, math.nan, -math.inf])
def test_positive_refuses_zero_negative_and_non_finite(value):
    with pytest.raises(ValueError, match=r"lr=.* is invalid; accepted: a positive finite number \(> 0\)"):
        V.positive("lr", value)


@pytest.mark.parametrize("value", [True, "0.1", None, [0.1]])
def test_reals_refuse_bools_and_non_numbers(value):
    with pytest.raises(V.InvalidTypeError, match="weight_decay="):
        V.non_negative("weight_decay", value)


def test_non_negative_finite_float_and_fraction_bounds():
    assert V.non_negative("wd", 0) == 0.0
    with pytest.raises(ValueError, match="wd=-0.1"):
        V.non_negative("wd", -0.1)
    assert V.finite_float("x", -3) == -3.0
    with pytest.raises(ValueError, match="x=nan"):
        V.finite_float("x", math.nan)
    assert V.fraction("p", 0) == 0.0 and V.fraction("p", 1) == 1.0
    with pytest.raises(ValueError, match=r"p=1.5 is invalid; accepted: a finite number in \[0, 1\]"):
        V.fraction("p", 1.5)
    assert V.fraction("label_smoothing", 0.999, high_open=True) == 0.999
    with pytest.raises(ValueError, match=r"label_smoothing=1.0 .*\[0, 1\)"):
        V.fraction("label_smoothing", 1.0, high_open=True)


def test_real_open_bounds_infinity_and_custom_description():
    with pytest.raises(ValueError, match=r"level=0 is invalid; accepted: a finite number in \(0, 1\)"):
        V.real("level", 0, minimum=0, maximum=1, low_open=True, high_open=True)
    assert V.real("level", 0.95, minimum=0, maximum=1, low_open=True, high_open=True) == 0.95
    assert V.real("t", math.inf, allow_inf=True) == math.inf
    with pytest.raises(ValueError, match="t=nan"):
        V.real("t", math.nan, allow_inf=True)
    with pytest.raises(ValueError, match="accepted: a float > 0 .e.g. 0.9."):
        V.real("fraction", -1, minimum=0, low_open=True, accepted="a float > 0 (e.g. 0.9)")


def test_boolean():
    assert V.boolean("download", True) is True and V.boolean("download", np.bool_(False)) is False
    for bad in (0, 1, "yes", None):
        with pytest.raises(V.InvalidTypeError, match=f"download={bad!r} .*True or False"):
            V.boolean("download", bad)


def test_one_of_lists_every_accepted_value():
    assert V.one_of("loss", "ce", ("mse", "ce")) == "ce"
    with pytest.raises(ValueError, match=r"loss='hinge' is invalid; accepted: 'mse', 'ce'$"):
        V.one_of("loss", "hinge", ("mse", "ce"))
    assert V.one_of("sign", -1.0, (1, -1)) == -1.0
    with pytest.raises(ValueError, match="sign=True"):
        V.one_of("sign", True, (1, -1))  # a bool is not the number 1 here
    with pytest.raises(ValueError, match=r"dtype=\[1\]"):
        V.one_of("dtype", [1], {"float32": 1})  # unhashable: refused, not a TypeError from `in`
