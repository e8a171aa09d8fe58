"""The one reader of a chip folder's ``meta.json`` (every task's chips carry one)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from geodefect.errors import InputError, InputFileNotFoundError


def read_chip_meta(chips_dir: str | Path, *, required: Iterable[str] = ()) -> dict[str, Any]:
    """Read ``CHIPS_DIR/meta.json`` with clear errors for a missing folder, file or key.

    Args:
        chips_dir: a folder written by ``geodefect chip``.
        required: keys the caller needs; a missing one is an error naming the fix.
    """
    d = Path(chips_dir)
    if not d.is_dir():
        raise InputFileNotFoundError(f"chip folder {str(d)!r} does not exist; run `geodefect chip` first")
    meta_path = d / "meta.json"
    if not meta_path.is_file():
        raise InputError(
            f"folder {str(d)!r} has no meta.json, so it is not a chip folder written by `geodefect chip` (or "
            "chipping was interrupted): make one with `geodefect chip IMAGES ... -o CHIPS`, or rerun the "
            "interrupted command to finish it"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        raise InputError(f"{str(meta_path)!r} is not valid JSON; rerun `geodefect chip --overwrite`") from None
    missing = [k for k in required if k not in meta]
    if missing:
        raise InputError(f"{str(meta_path)!r} ({meta.get('task')!r} chips) lacks {', '.join(missing)}: these chips are "
                         "for another task, or were written by an older geodefect; rerun `geodefect chip --overwrite`")
    return meta
