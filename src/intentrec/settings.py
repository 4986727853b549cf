"""The base of every config and request model: closed to unknown keys and strict about plain values."""

from __future__ import annotations

from typing import Any, get_args

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
            kinds = _plain_kinds(field.annotation) if field else set()
            if not kinds or value is None:
                continue
            if bool in kinds and not isinstance(value, bool):
                expected = "true or false"
            elif bool not in kinds and isinstance(value, bool | str):
                expected = "a number"
            else:
                continue
            raise PydanticCustomError(
                WRONG_KIND,
                "{field}: expected {expected}",
                {"field": name, "expected": expected, "value": value},
            )
        return values


def _plain_kinds(annotation: Any) -> set[type]:
    """``{int}`` for ``int`` or ``int | None``, ``{bool}`` for ``bool``; empty for anything else."""
    options = [option for option in get_args(annotation) if option is not type(None)] or [annotation]
    return set(options) if all(option in _PLAIN for option in options) else set()
