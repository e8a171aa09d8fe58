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


def option(default: Any = dataclasses.MISSING, help: str = "", *, default_factory: Any = dataclasses.MISSING,
           choices: tuple[str, ...] | None = None, resume_free: bool = False, cli: bool = True,
           show_default: Any = None) -> Any:
    """A config dataclass field that also declares its command-line option (the CLI is generated from it).

    Args:
        default, default_factory: as :func:`dataclasses.field`; the default is shown in ``--help``
            from here, never copied into a help string.
        help: the option's help text (no default in it).
        choices: allowed values (a ``click.Choice``).
        resume_free: the value may change on ``train --resume`` (it does not change the result:
            device, threads, checkpoint cadence).
        cli: False for keys that only a ``--config`` file sets (dicts, lists).
        show_default: the default as shown in ``--help`` when it is not the field's own
            (e.g. "the model's" for a None that means "from the package").
    """
    metadata = {"help": help, "choices": choices, "resume_free": resume_free, "cli": cli,
                "show_default": show_default}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_meta(cls: type, name: str) -> dict[str, Any]:
    """The :func:`option` metadata of one field (empty dict for a plain field)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return dict(f.metadata)
    raise KeyError(name)


def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


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
