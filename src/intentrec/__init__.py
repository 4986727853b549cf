"""IntentRec: sequential and generative recommendation, honestly evaluated.

The public API is small: a :class:`RunConfig` says what to train, a :class:`Recommender` fits, evaluates,
recommends and saves; :class:`Dataset` is the canonical, validated form of an interaction log.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from intentrec.config import RunConfig
    from intentrec.data.dataset import Dataset
    from intentrec.recommender import Recommender

__all__ = ["Dataset", "Recommender", "RunConfig"]
__version__ = "0.1.0"

# Imported on first use, so that `import intentrec.data...` does not pay for importing torch.
_LAZY = {
    "Dataset": "intentrec.data.dataset",
    "Recommender": "intentrec.recommender",
    "RunConfig": "intentrec.config",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'intentrec' has no attribute {name!r}")
