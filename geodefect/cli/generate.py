"""Command-line options generated from the config dataclasses (declared once, in the dataclass).

The flag comes from the field name (``batch_size`` -> ``--batch-size``), the help from the
field's :func:`geodefect.config.option` metadata, and the default shown in ``--help`` from the
dataclass itself -- with the per-task defaults where tasks differ (``[default: 10; roads: 20]``),
so no default is ever copied into a help string. Every generated option has ``default=None``:
only the options the user gives reach the config resolver, which applies the real defaults.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Iterable
from typing import Any

import click


def docstring_help(cls: type) -> dict[str, str]:
    """Per-field help from a Google-style ``Attributes:`` section of ``cls``'s docstring.

    ``name: text`` and ``a, b: text`` (one text for several fields) lines; continuation lines
    are joined. Dataclasses declared with :func:`geodefect.config.option` carry their help in
    the field metadata instead.
    """
    doc = inspect.getdoc(cls) or ""
    if "Attributes:" not in doc:
        return {}
    helps: dict[str, str] = {}
    current: list[str] = []
    for line in doc.split("Attributes:", 1)[1].splitlines():
        if line and not line.startswith(" "):
            break
        match = re.match(r"^    ([a-z_][a-z0-9_, ]*):\s*(.*)$", line)
        if match:
            current = [n.strip() for n in match.group(1).split(",")]
            for name in current:
                helps[name] = match.group(2).strip()
        elif line.strip() and current:
            for name in current:
                helps[name] += " " + line.strip()
    return helps


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def click_type(field: dataclasses.Field, choices: tuple | None) -> tuple[Any, bool]:
    """``(click type, is_bool)`` for a dataclass field's annotation."""
    if choices:
        return click.Choice(list(choices)), False
    hint = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    base = hint.replace(" ", "").split("|")
    if "bool" in base:
        return bool, True
    if base[0] == "int" and "str" not in base:
        return int, False
    if base[0] == "float" and "str" not in base:
        return float, False
    return str, False


def _default_text(default: Any) -> str:
    if default is None:
        return "none"
    if isinstance(default, bool):
        return "on" if default else "off"
    return str(default)


@dataclasses.dataclass
class OptionSpec:
    """One generated option: the field, its help and the defaults shown."""

    field: dataclasses.Field
    help: str
    shown_default: str
    choices: tuple | None = None


def collect(sources: Iterable[tuple[type, dict[str, Any], str]], *, skip: Iterable[str] = (),
            only: Iterable[str] | None = None) -> dict[str, OptionSpec]:
    """Merge the CLI fields of several dataclasses into one spec per name.

    Args:
        sources: ``(dataclass, default_overrides, label)``: e.g. ``(LoopConfig, task.loop_defaults,
            "roads")``; the label names whose defaults differ in the help.
        skip: field names not offered as options.
        only: if given, offer only these field names.
    """
    only = set(only) if only is not None else None
    specs: dict[str, OptionSpec] = {}
    per_label: dict[str, dict[str, str]] = {}
    for cls, overrides, label in sources:
        documented = docstring_help(cls)
        for f in dataclasses.fields(cls):
            if f.name in skip or not f.metadata.get("cli", True) or not (f.metadata or f.name in documented):
                continue
            if only is not None and f.name not in only:
                continue
            shown = f.metadata.get("show_default")
            if shown is None:
                default = overrides.get(f.name, f.default if f.default is not dataclasses.MISSING else None)
                shown = _default_text(default)
            per_label.setdefault(f.name, {})[label] = str(shown)
            choices = f.metadata.get("choices")
            if f.name in specs and specs[f.name].choices != choices:
                specs[f.name].choices = None  # tasks disagree: each task's config validates its own values
                continue
            text = (f.metadata.get("help") or documented.get(f.name, "")).replace("``", "")
            if not re.match(r"^\w+ \|", text):  # "auto | cpu | ..." keeps its case
                text = text[:1].upper() + text[1:]
            specs.setdefault(f.name, OptionSpec(f, text, "", choices))
    for name, spec in specs.items():
        spec.shown_default = _merge_defaults(per_label[name])
    return specs


def _merge_defaults(by_label: dict[str, str]) -> str:
    """``"10; roads: 20"``: the most common default, then the labels that differ."""
    values = list(by_label.values())
    common = max(set(values), key=values.count)
    others = [f"{label}: {v}" for label, v in by_label.items() if v != common]
    return "; ".join([common, *others]) if others else common


def options(specs: dict[str, OptionSpec]) -> Callable:
    """A decorator adding one click option per spec (``default=None``; help shows the default)."""

    def decorate(fn: Callable) -> Callable:
        for name in reversed(sorted(specs)):
            spec = specs[name]
            ctype, is_bool = click_type(spec.field, spec.choices)
            says_default = spec.shown_default == "none" and "default" in spec.help
            help_text = spec.help if says_default else f"{spec.help} [default: {spec.shown_default}]".strip()
            if is_bool:
                flag = spec.field.name.replace("_", "-")
                fn = click.option(f"--{flag}/--no-{flag}", name, default=None, help=help_text)(fn)
            else:
                fn = click.option(flag_name(name), name, type=ctype, default=None, help=help_text)(fn)
        return fn

    return decorate


def field_names_of(*classes: type) -> set[str]:
    return {f.name for cls in classes for f in dataclasses.fields(cls)}


def parse_lr(value: Any) -> Any:
    """``--lr`` takes a number or ``auto``."""
    if value is None or value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"must be a number or 'auto', got {value!r}") from None


