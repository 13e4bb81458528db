"""Checking a user's parameterization against the experiment's search space."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from ax.core.parameter import ChoiceParameter, FixedParameter, ParameterType, RangeParameter
from ax.core.search_space import SearchSpace

from .._exceptions import InvalidParametersError

Parameters = dict[str, Any]


def validate_parameters(space: SearchSpace, parameters: Any) -> Parameters:
    """Check a parameterization against a search space with messages naming the culprit.

    Returns:
        The parameters, with ints widened to float for float parameters.

    Raises:
        InvalidParametersError: Unknown or missing names, wrong types, out of bounds,
            not one of the choices, or a parameter constraint violated.
    """
    if not isinstance(parameters, Mapping):
        raise InvalidParametersError(
            f"parameters must be a dict of name -> value, got {type(parameters).__name__}"
        )
    known = space.parameters
    unknown = [name for name in parameters if name not in known]
    if unknown:
        raise InvalidParametersError(
            f"unknown parameter {unknown[0]!r} (value {parameters[unknown[0]]!r});"
            f" the search space has: {', '.join(known)}"
        )
    missing = [name for name in known if name not in parameters]
    if missing:
        raise InvalidParametersError(
            f"missing parameter {missing[0]!r}; every trial needs: {', '.join(known)}"
        )
    checked = {name: _check_value(known[name], value) for name, value in parameters.items()}
    try:
        space.check_membership(checked, raise_error=True)
    except ValueError as exc:
        raise InvalidParametersError(f"parameters {checked!r} are not allowed: {exc}") from None
    return checked


def _check_value(parameter: Any, value: Any) -> Any:
    name = parameter.name
    if isinstance(parameter, RangeParameter):
        number = _range_number(parameter, value)
        if not parameter.lower <= number <= parameter.upper:
            raise InvalidParametersError(
                f"parameter {name!r} = {value!r} is out of bounds"
                f" [{parameter.lower}, {parameter.upper}]"
            )
        return number
    if isinstance(parameter, ChoiceParameter) and value not in parameter.values:
        raise InvalidParametersError(
            f"parameter {name!r} = {value!r} is not one of its choices {parameter.values!r}"
        )
    if isinstance(parameter, FixedParameter) and value != parameter.value:
        raise InvalidParametersError(
            f"parameter {name!r} is fixed to {parameter.value!r}, got {value!r}"
        )
    return value


def _range_number(parameter: RangeParameter, value: Any) -> int | float:
    is_int = parameter.parameter_type == ParameterType.INT
    expected = "an int" if is_int else "a float"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParametersError(
            f"parameter {parameter.name!r} must be {expected},"
            f" got {value!r} ({type(value).__name__})"
        )
    if is_int:
        if not isinstance(value, numbers.Integral) and not float(value).is_integer():
            raise InvalidParametersError(
                f"parameter {parameter.name!r} must be an int, got {value!r}"
            )
        return int(value) if isinstance(value, numbers.Integral) else int(float(value))
    if not math.isfinite(value):
        raise InvalidParametersError(f"parameter {parameter.name!r} must be finite, got {value!r}")
    return float(value)
