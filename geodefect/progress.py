"""Progress bars (tqdm on stderr), silenced by ``-q`` or GEODEFECT_NO_PROGRESS=1."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any


def progress(iterable: Iterable | None = None, **kwargs: Any):
    """A tqdm bar on stderr; disabled when quiet or when stderr is not a terminal in CI."""
    from tqdm.auto import tqdm

    disable = os.environ.get("GEODEFECT_NO_PROGRESS") == "1"
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("leave", False)
    return tqdm(iterable, disable=disable, **kwargs)
