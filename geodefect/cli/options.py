"""Options shared by every command, and the one place a GeodefectError becomes exit code 1."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

import click


def verbosity_options(fn: Callable) -> Callable:
    """Add ``-v/--verbose`` (debug logs, tracebacks) and ``-q/--quiet`` (warnings only, no bars)."""
    fn = click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors; no progress bars.")(fn)
    fn = click.option("-v", "--verbose", is_flag=True, help="Debug logging; tracebacks on errors.")(fn)
    return fn


def overwrite_option(fn: Callable) -> Callable:
    return click.option(
        "--overwrite", is_flag=True, help="Replace existing outputs (otherwise they are kept / resumed)."
    )(fn)


def config_option(fn: Callable) -> Callable:
    return click.option(
        "--config",
        "config_file",
        type=click.Path(dir_okay=False),
        default=None,
        help="YAML file of options; explicit command-line flags win over it.",
    )(fn)


def setup_logging(*, verbose: bool, quiet: bool) -> None:
    """Logs go to stderr; stdout carries results. Quiet also hides progress bars."""
    import os

    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr, force=True)
    for noisy in ("pyogrio", "rasterio", "fiona", "matplotlib", "PIL", "distributed"):  # library chatter
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    if quiet:
        os.environ["GEODEFECT_NO_PROGRESS"] = "1"


def run_command(fn: Callable[..., Any], *args: Any, verbose: bool = False, quiet: bool = False, **kwargs: Any) -> Any:
    """Run a workflow; turn a GeodefectError into a one-line ``Error: ...`` and exit code 1.

    A :class:`~geodefect.errors.UsageError` (malformed command line) exits with 2, as click's
    own usage errors do; a permission or full-disk OSError is one line naming the path (exit 1).

    With ``verbose`` the traceback is printed too. Ctrl-C exits with 130 and a hint that
    rerunning the same command resumes.
    """
    from geodefect.errors import GeodefectError, UsageError

    setup_logging(verbose=verbose, quiet=quiet)
    try:
        return fn(*args, **kwargs)
    except UsageError as exc:  # a malformed command line: exit 2 with the usage line, as click
        raise click.UsageError(_one_line(str(exc)), ctx=click.get_current_context(silent=True)) from None
    except GeodefectError as exc:
        if verbose:
            import traceback

            traceback.print_exc()
        raise click.ClickException(_one_line(str(exc))) from None
    except OSError as exc:
        message = _output_os_error(exc)
        if message is None:
            raise
        if verbose:
            import traceback

            traceback.print_exc()
        raise click.ClickException(message) from None
    except KeyboardInterrupt:
        click.echo("Interrupted; nothing half-written was kept. Rerun the same command to resume.", err=True)
        sys.exit(130)


_OUTPUT_ERRNOS = {
    "EACCES": "permission denied; choose a folder you can write to or fix its permissions",
    "EPERM": "operation not permitted; choose a folder you can write to",
    "EROFS": "the file system is read-only; choose a writable output folder",
    "ENOSPC": "no space left on the device; free space or write elsewhere",
    "EDQUOT": "disk quota exceeded; free space or write elsewhere",
}


def _output_os_error(exc: OSError) -> str | None:
    """One line naming the path and the cause of a permission / full-disk error, else None."""
    import errno as errno_mod

    name = errno_mod.errorcode.get(exc.errno or -1)
    if name not in _OUTPUT_ERRNOS:
        return None
    where = f" writing {exc.filename!s}" if exc.filename else ""
    return f"cannot write{where}: {_OUTPUT_ERRNOS[name]} ({name})"


def _one_line(message: str) -> str:
    return " ".join(message.split())


def drop_none(**options: Any) -> dict[str, Any]:
    """The options the user actually gave (click passes None for unset ones)."""
    return {k: v for k, v in options.items() if v is not None and v != ()}


def command(fn: Callable) -> Callable:
    """Decorator for thin command bodies: wraps with verbosity options."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return verbosity_options(wrapper)
