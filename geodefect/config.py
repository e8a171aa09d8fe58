"""Configuration: frozen dataclasses, YAML files (``safe_load``), explicit flags win.

``resolve_config(Cls, config_file, overrides)`` = defaults <- YAML file <- command-line flags.
Unknown keys are an error that lists the valid ones.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

from geodefect.errors import ConfigError, InputFileNotFoundError

T = TypeVar("T")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with ``yaml.safe_load``; a clear error if missing or not a mapping."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise InputFileNotFoundError(f"config file {str(p)!r} does not exist; check the path")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(p)!r} is not valid YAML ({exc.__class__.__name__}); fix its syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping of option: value, got {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def resolve_config(cls: type[T], config_file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> T:
    """Build a dataclass config: defaults, then the YAML file, then explicit overrides.

    Raises:
        ConfigError: for keys that are not fields of ``cls`` (the message lists the valid ones).
    """
    fields = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for source, data in (("config file", load_yaml(config_file) if config_file else {}), ("options", overrides or {})):
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ConfigError(
                f"unknown {source} key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(fields))}"
            )
        values.update({k: v for k, v in data.items() if v is not None})
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass config as plain JSON/YAML-able data (tuples -> lists, Paths -> str)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    import yaml

    from geodefect.io.atomic import write_text_atomic

    write_text_atomic(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
