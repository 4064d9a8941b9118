"""Generic argument validators shared by every module of the package.

Each validator takes the parameter's ``name`` and its ``value``, returns the value converted to a
plain Python type (``int``, ``float``, ``bool``) when it is acceptable, and otherwise raises an
exception whose message is **one line naming the parameter, its value and what is accepted**::

    n_train=0 is invalid; accepted: a positive integer (>= 1)
    seed=1.5 (float) is invalid; accepted: a non-negative integer (>= 0)

Two kinds of failure are told apart:

- the value has the wrong *kind* (``1.5`` or ``True`` where an integer is expected, a string
  where a number is expected): :class:`InvalidTypeError`, which is both a :class:`TypeError` and
  a :class:`ValueError`, so callers that document either keep working;
- the value has the right kind but lies outside the accepted set (``0`` where ``>= 1`` is
  needed, ``nan`` where a finite number is needed): :class:`ValueError`.

Conventions: ``bool`` is never accepted as a number (``True`` is not ``1`` here); integers are
Python ``int`` or NumPy integers (``numbers.Integral``), never floats, even integral ones such as
``2.0``; real numbers are ``int``, ``float`` or NumPy scalars (``numbers.Real``).

Domain-specific checks (tensor shapes, model structure) stay in their modules and call these
helpers for their scalar arguments.

Example:
    >>> from sharpjac import validation as V
    >>> V.positive_int("n_train", 100)
    100
    >>> V.fraction("label_noise", 0.2)
    0.2
    >>> V.one_of("loss", "mse", ("mse", "ce"))
    'mse'
    >>> V.positive_int("n_train", 0)
    Traceback (most recent call last):
    ...
    ValueError: n_train=0 is invalid; accepted: a positive integer (>= 1)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "InvalidTypeError",
    "is_int",
    "is_real",
    "boolean",
    "finite_float",
    "fraction",
    "integer",
    "non_negative",
    "non_negative_int",
    "one_of",
    "positive",
    "positive_int",
    "real",
]

T = TypeVar("T")


class InvalidTypeError(TypeError, ValueError):
    """A value of the wrong kind (e.g. a float or a bool where an integer is expected).

    Subclasses both :class:`TypeError` and :class:`ValueError`: ``except ValueError`` and
    ``except TypeError`` both catch it.
    """


def _fail(name: str, value: Any, accepted: str, *, wrong_type: bool = False) -> Exception:
    if wrong_type:
        return InvalidTypeError(f"{name}={value!r} ({type(value).__name__}) is invalid; accepted: {accepted}")
    return ValueError(f"{name}={value!r} is invalid; accepted: {accepted}")


def is_int(value: Any) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A real number (Python or numpy, integers included), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


_is_int, _is_real = is_int, is_real


def _range_text(kind: str, minimum: Any, maximum: Any, low_open: bool = False, high_open: bool = False) -> str:
    if minimum is not None and maximum is not None:
        return f"{kind} in {'(' if low_open else '['}{minimum}, {maximum}{')' if high_open else ']'}"
    if minimum is not None:
        return f"{kind} {'>' if low_open else '>='} {minimum}"
    if maximum is not None:
        return f"{kind} {'<' if high_open else '<='} {maximum}"
    return kind


def integer(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer in ``[minimum, maximum]`` (either bound may be None: unbounded).

    Refuses ``bool`` and every float (also ``2.0``) with :class:`InvalidTypeError`.

    Returns:
        ``int(value)``.
    """
    if maximum is None and minimum in (0, 1):
        accepted = "a positive integer (>= 1)" if minimum == 1 else "a non-negative integer (>= 0)"
    else:
        accepted = _range_text("an integer", minimum, maximum)
    if not _is_int(value):
        raise _fail(name, value, accepted, wrong_type=True)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise _fail(name, value, accepted)
    return int(value)


def positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """An integer ``>= minimum`` (default 1): sizes, counts, widths."""
    return integer(name, value, minimum=minimum)


def non_negative_int(name: str, value: Any) -> int:
    """An integer ``>= 0``: seeds, indices, step counts that may be zero."""
    return integer(name, value, minimum=0)


def real(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_inf: bool = False,
    accepted: str | None = None,
) -> float:
    """A real number in the interval between ``minimum`` and ``maximum``.

    Args:
        name, value: the parameter and its value.
        minimum, maximum: bounds (None: unbounded on that side).
        low_open, high_open: exclude the bound itself (``(0, 1)`` is ``low_open=high_open=True``).
        allow_inf: accept ``+-inf`` (NaN is never accepted).
        accepted: the description of the accepted values in the message (default: built from the
            bounds, e.g. ``"a finite number in [0, 1]"``).

    Returns:
        ``float(value)``.
    """
    if accepted is None:
        kind = "a number" if allow_inf else "a finite number"
        accepted = _range_text(kind, minimum, maximum, low_open, high_open)
    if not _is_real(value):
        raise _fail(name, value, accepted, wrong_type=True)
    x = float(value)
    if math.isnan(x) or (not allow_inf and math.isinf(x)):
        raise _fail(name, value, accepted)
    if minimum is not None and (x < minimum or (low_open and x == minimum)):
        raise _fail(name, value, accepted)
    if maximum is not None and (x > maximum or (high_open and x == maximum)):
        raise _fail(name, value, accepted)
    return x


def finite_float(name: str, value: Any) -> float:
    """Any finite real number."""
    return real(name, value)


def positive(name: str, value: Any) -> float:
    """A finite real number ``> 0``: learning rates, radii, Lipschitz constants."""
    return real(name, value, minimum=0, low_open=True, accepted="a positive finite number (> 0)")


def non_negative(name: str, value: Any) -> float:
    """A finite real number ``>= 0``: weight decay, regularisation strengths."""
    return real(name, value, minimum=0, accepted="a non-negative finite number (>= 0)")


def fraction(name: str, value: Any, *, high_open: bool = False) -> float:
    """A number in ``[0, 1]`` (``[0, 1)`` with ``high_open=True``): noise rates, smoothing."""
    return real(name, value, minimum=0, maximum=1, high_open=high_open)


def boolean(name: str, value: Any) -> bool:
    """``True`` or ``False`` (also NumPy's ``bool_``); ``0``/``1`` and strings are refused."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise _fail(name, value, "True or False", wrong_type=True)


def one_of(name: str, value: T, accepted: Iterable[Any]) -> T:
    """``value`` if it is (equal to) one of ``accepted``; the message lists them all.

    ``True``/``False`` match only booleans in ``accepted`` (not ``1``/``0``). A value whose
    comparison raises (e.g. a multi-element tensor) counts as not accepted.
    """
    options = tuple(accepted)
    try:
        ok = value in options
    except Exception:  # noqa: BLE001 - exotic __eq__: treat as not accepted
        ok = False
    if ok and isinstance(value, bool) and not any(isinstance(a, bool) for a in options):
        ok = False
    if not ok:
        raise _fail(name, value, ", ".join(repr(a) for a in options))
    return value
