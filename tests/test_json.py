"""The package's one JSON normaliser (``sharpjac._util.jsonable``), against ``json`` round trips and
hand-written expected values; and the run keys it feeds are those of the copies it replaced."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sharpjac._util import jsonable
from sharpjac.claims import json_safe
from sharpjac.runs import config_key
from sharpjac.training import TrainConfig


def test_structure_becomes_plain_json():
    value = {"a": (1, 2.5, "x", None, True), 3: {"b": [np.int64(4), np.float32(0.5), np.bool_(False)]}}
    out = jsonable(value)
    assert out == {"a": [1, 2.5, "x", None, True], "3": {"b": [4, 0.5, False]}}
    assert type(out["3"]["b"][0]) is int and type(out["3"]["b"][2]) is bool
    assert json.loads(json.dumps(out)) == out  # already plain: a JSON round trip changes nothing
    assert jsonable(np.arange(3.0).reshape(1, 3)) == [[0.0, 1.0, 2.0]] and jsonable(np.array(7)) == 7


def test_non_finite_values_are_kept_or_made_null():
    assert math.isnan(jsonable([float("nan")])[0]) and jsonable((np.inf,)) == [math.inf]
    assert jsonable([float("nan"), -np.inf, np.float64(1.0)], nonfinite="null") == [None, None, 1.0]
    json.dumps(jsonable({"x": np.nan}, nonfinite="null"), allow_nan=False)  # strict JSON: no error


def test_other_objects_are_kept_or_made_text():
    marker = object()
    assert jsonable({"m": marker})["m"] is marker
    with pytest.raises(TypeError):
        json.dumps(jsonable({"m": marker}))  # a config that is not JSON stays an error
    assert jsonable({"m": 1 + 2j}, other="str") == {"m": "(1+2j)"}
    assert json_safe({"a": np.float32(1.5), "c": [np.nan, 1], "d": 1 + 2j}) == {"a": 1.5, "c": [None, 1], "d": "(1+2j)"}


@pytest.mark.parametrize(("argument", "value"), [("nonfinite", "drop"), ("other", "repr")])
def test_bad_options_are_named(argument, value):
    with pytest.raises(ValueError, match=f"{argument}={value!r}; accepted"):
        jsonable({}, **{argument: value})


def _old_to_dict(config) -> dict:
    """TrainConfig.to_dict as it was before the normaliser was shared (the oracle)."""

    def conv(v):
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, (tuple, list)):
            return [conv(x) for x in v]
        return v

    import dataclasses

    return {f.name: conv(getattr(config, f.name)) for f in dataclasses.fields(config)}


def test_train_config_dict_and_run_key_are_unchanged():
    tc = TrainConfig(
        dataset="digits",
        dataset_options={"n_train": 40, "n_test": 20},
        model="mlp",
        model_options={"widths": (6, 4), "activation": "tanh"},
        max_steps=2,
        snapshot_steps=(0, 2),
        device="cpu",
    )
    assert tc.to_dict() == _old_to_dict(tc)
    assert json.dumps(tc.to_dict(), sort_keys=True) == json.dumps(_old_to_dict(tc), sort_keys=True)
    assert len(config_key(tc)) == 64
