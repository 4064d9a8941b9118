"""Shared chapter display helpers (sharpjac.display)."""

import pytest

from sharpjac import display


@pytest.mark.parametrize(
    ("x", "digits", "expected"),
    [(-0.001, 2, "0.00"), (-0.004999, 2, "0.00"), (-0.005001, 2, "-0.01"), (1.2345, 3, "1.234"), (0.0, 1, "0.0")],
)
def test_fmt_num_has_no_negative_zero(x, digits, expected):
    assert display.fmt_num(x, digits) == expected


def test_fmt_iv_formats_each_end():
    assert display.fmt_iv(0.5, -0.0001, 1.25, digits=2) == "0.50 [0.00, 1.25]"


def test_num_set_and_list():
    assert display.num_set([0.1, 1e-4]) == "\\{0.1, 0.0001\\}"
    assert display.num_list([3]) == "3"
    assert display.num_list([1, 2]) == "1 and 2"
    with pytest.raises(ValueError, match="at least one"):
        display.num_list([])


def test_configs_for_refuses_bad_preset_seed_and_unknown_params():
    from sharpjac import experiments

    exp = experiments.get("data")
    with pytest.raises(ValueError, match="preset='huge'"):
        exp.configs_for("huge", 0)
    with pytest.raises(ValueError, match="seed=-1"):
        exp.configs_for("smoke", -1)


def test_fmt_num_writes_a_missing_number_as_n_a():
    assert display.fmt_num(float("nan")) == "n/a"
    assert display.fmt_num(float("inf"), 3) == "n/a"
    assert display.fmt_iv(0.5, float("nan"), float("nan")) == "0.50 [n/a, n/a]"
