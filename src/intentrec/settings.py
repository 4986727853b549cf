"""The base of every config and request model: closed to unknown keys and strict about plain values."""

from __future__ import annotations

from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

_PLAIN = (bool, int, float)

#: The error type of a plain value of the wrong kind; its context names the ``field`` and the ``value``.
WRONG_KIND = "wrong_kind"


class Settings(BaseModel):
    """A pydantic model that refuses unknown keys, NaN and infinities, and plain values of the wrong kind.

    pydantic's lax mode reads ``true`` as the number 1, ``1``, ``"yes"`` or ``"off"`` as a switch and
    ``"3"`` as a number, so ``epochs = true`` would train one epoch; a value written as the wrong kind is far
    more often a mistake than a shorthand, so a field that is a number, a switch or an optional one of
    those takes only a value of its own kind (an integer for a float too, as JSON and TOML write 1.0).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _plain_values_of_their_own_kind(cls, values: Any) -> Any:
        # a model validator, not a field one: pydantic forbids those on a union's tag (a backbone's name)
        if not isinstance(values, dict):
            return values
        for name, value in values.items():
            field = cls.model_fields.get(name)
            wrong = _wrong_kind(field.annotation, value, name) if field else None
            if wrong is not None:
                where, expected, given = wrong
                context = {"field": where, "expected": expected, "value": given}
                raise PydanticCustomError(WRONG_KIND, "{field}: expected {expected}", context)
        return values


def _wrong_kind(annotation: Any, value: Any, where: str) -> tuple[str, str, Any] | None:
    """``(where, what was expected, the value)`` for a plain value of the wrong kind in ``value`` (itself,
    or an element of a list, tuple or mapping of plain values); None when there is none."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    options = [option for option in get_args(annotation) if option is not type(None)]
    if get_origin(annotation) in (list, tuple) and isinstance(value, list | tuple):
        elements = [option for option in options if option is not Ellipsis]
        for index, element in enumerate(value):  # a tuple's options are one per position
            found = _wrong_kind(elements[min(index, len(elements) - 1)], element, f"{where}.{index}")
            if found:
                return found
        return None
    if get_origin(annotation) is dict and isinstance(value, dict) and len(options) == 2:
        for key, element in value.items():
            found = _wrong_kind(options[1], element, f"{where}.{key}")
            if found:
                return found
        return None
    kinds = set(options or [annotation])
    if value is None or not kinds <= set(_PLAIN):
        return None
    if bool in kinds and not isinstance(value, bool):
        return where, "true or false", value
    if bool not in kinds and isinstance(value, bool | str):
        return where, "a number", value
    return None
