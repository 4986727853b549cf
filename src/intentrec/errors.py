"""Errors that describe a user's mistake.

Anything raised as an :class:`IntentRecError` is shown by the CLI as a short message with no traceback,
so the message itself must say where the problem is (file, line, column or field), what was found and
what was expected. Everything else is a bug in IntentRec and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class IntentRecError(Exception):
    """A mistake in what the user gave us (data, config, arguments): reported without a traceback."""


class DataError(IntentRecError):
    """Input data that cannot be read as asked: names the file, line or column and what was expected."""


class ConfigError(IntentRecError):
    """A configuration value or command-line option that is not allowed."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return `` (did you mean 'x'?)`` for the closest of ``choices`` to ``name``, or an empty string."""
    lowered = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean '{lowered[close[0]]}'?)" if close else ""
