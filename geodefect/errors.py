"""Errors raised for bad input, each also inheriting the natural builtin.

Every message names the parameter or file, the value received, what was expected and
how to fix it, so that the CLI can print it as one line and exit with status 1
(``geodefect.cli.options.run_command`` does that).
"""

from __future__ import annotations


class GeodefectError(Exception):
    """Base class of every user-facing geodefect error."""


class InputError(GeodefectError, ValueError):
    """An input file, option or value is not usable as given."""


class UsageError(InputError):
    """The command line is malformed: an argument missing, or options that exclude each other.

    The CLI exits with 2 for it, as click does for an unknown flag (bad data exit with 1).
    """


class InputFileNotFoundError(GeodefectError, FileNotFoundError):
    """An input path does not exist."""


class OutputExistsError(GeodefectError, FileExistsError):
    """An output already exists and ``--overwrite`` was not given."""


class ConfigError(GeodefectError, ValueError):
    """A configuration file or option combination is invalid."""


class ModelPackageError(GeodefectError, ValueError):
    """A file is not a readable geodefect model package."""


class TrainingError(GeodefectError, RuntimeError):
    """Training cannot go on (e.g. the loss became NaN)."""


def require_file(path, *, what: str = "input file") -> None:
    """Raise :class:`InputFileNotFoundError` unless ``path`` is an existing file."""
    from pathlib import Path

    if str(path).startswith("/vsimem/"):  # GDAL's in-memory files (e.g. pan-sharpened VRTs)
        return
    p = Path(path)
    if not p.exists():
        raise InputFileNotFoundError(f"{what} {str(p)!r} does not exist; check the path")
    if not p.is_file():
        raise InputError(f"{what} {str(p)!r} is a directory, expected a file")


class MissingExtraError(GeodefectError, ImportError):
    """An optional dependency (a pip extra such as ``geodefect[onnx]``) is not installed."""


class QualityGateError(GeodefectError, RuntimeError):
    """A converted model (e.g. int8) scores worse than the tolerance allows; nothing was written."""
