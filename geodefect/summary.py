"""The one result type every workflow returns and the CLI prints the same way for every task."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any


@dataclasses.dataclass
class Summary:
    """What a verb did, for a person (``lines``) and for a program (``data``).

    Attributes:
        verb: ``chip``, ``train``, ``infer``, ``evaluate``, ``explain``, ``review`` or ``demo``.
        task: the task name (``roads``, ``crack_segment``, ...), or "" where none applies.
        lines: a few lines for stdout: counts, key metrics, where the outputs are.
        data: the full record (metrics, settings, paths), written by ``--json FILE``.
    """

    verb: str
    task: str
    lines: list[str]
    data: dict[str, Any] = dataclasses.field(default_factory=dict)

    def text(self) -> str:
        return "\n".join(self.lines)

    def __str__(self) -> str:
        return self.text()

    def __getitem__(self, key: str) -> Any:
        """``summary["metrics"]``: a key of :attr:`data` (convenience for scripts and tests)."""
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def write_json(self, path: str | Path) -> None:
        """Write ``{"verb", "task", "data"}`` as JSON, atomically."""
        from geodefect.io.atomic import write_text_atomic

        record = {"verb": self.verb, "task": self.task, **self.data}
        write_text_atomic(path, json.dumps(record, indent=2, default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return str(value)
