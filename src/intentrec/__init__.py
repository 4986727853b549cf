"""IntentRec: sequential and generative recommendation, honestly evaluated.

The public API is small: a :class:`RunConfig` says what to train, a :class:`Recommender` fits, evaluates,
recommends and saves; :class:`Dataset` is the canonical, validated form of an interaction log;
:class:`Steering` weighs prior heads at request time (a dict of its fields is taken too).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from intentrec.config import RunConfig
    from intentrec.data.dataset import Dataset
    from intentrec.models.heads import Steering
    from intentrec.recommender import Recommender

__all__ = ["Dataset", "Recommender", "RunConfig", "Steering"]
__version__ = "0.1.0"

# Imported on first use, so that `import intentrec.data...` does not pay for importing torch.
_LAZY = {
    "Dataset": "intentrec.data.dataset",
    "Recommender": "intentrec.recommender",
    "RunConfig": "intentrec.config",
    "Steering": "intentrec.models.heads",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'intentrec' has no attribute {name!r}")
