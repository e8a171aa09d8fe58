"""Named datasets (``data_catalog.yaml``): ``--dataset NAME`` -> input paths.

The catalog is the YAML file at the project's top level (or ``GEODEFECT_CATALOG``). Each
entry has a ``task`` and a ``root`` folder; roots may use ``{cache}`` (``GEODEFECT_CACHE``,
default ``~/.cache/geodefect``), ``{data}`` (``GEODEFECT_DATA``, default ``./data``) and
``{shared}`` (``GEODEFECT_SHARED`` when set, else ``../shared/data`` beside the project). The
built-in demo scene (``generator: demo_scene``) is generated on first use into its root.

Road entries with ``pan`` (a glob of panchromatic rasters) and ``mul`` (the multispectral
raster of each, with ``{id}`` from ``id_regex``) are pan-sharpened on the fly
(:mod:`geodefect.io.pansharpen`; ``mul_bands``: MUL bands by number or name, default RGB).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geodefect.errors import ConfigError, InputError, InputFileNotFoundError

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_CATALOG = PROJECT_DIR / "data_catalog.yaml"


@dataclass(frozen=True)
class DatasetEntry:
    """One catalog entry: ``name``, ``task``, resolved ``root`` and the raw YAML mapping."""

    name: str
    task: str
    root: Path
    raw: dict[str, Any] = field(repr=False)

    @property
    def description(self) -> str:
        return str(self.raw.get("description", "")).strip()


@dataclass(frozen=True)
class RoadInputs:
    """Inputs of a road chip export: (image, centerlines) pairs, an optional AOI and bands."""

    sources: list[tuple[Path, Path]]
    aoi: Path | None = None
    bands: list[int] | None = None
    pan_sharpen: dict | None = None


def catalog_path() -> Path:
    return Path(os.environ.get("GEODEFECT_CATALOG", DEFAULT_CATALOG))


def root_placeholders() -> dict[str, str]:
    """Values of ``{cache}``, ``{data}``, ``{shared}`` in catalog roots."""
    cache = os.environ.get("GEODEFECT_CACHE", str(Path.home() / ".cache" / "geodefect"))
    data = os.environ.get("GEODEFECT_DATA", str(Path.cwd() / "data"))
    shared = os.environ.get("GEODEFECT_SHARED") or str(PROJECT_DIR.parent / "shared" / "data")
    return {"cache": cache, "data": data, "shared": shared}


def load_catalog(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The ``datasets`` mapping of the catalog file."""
    from geodefect.config import load_yaml

    p = Path(path) if path else catalog_path()
    if not p.is_file():
        raise InputFileNotFoundError(f"data catalog {str(p)!r} does not exist; set GEODEFECT_CATALOG to its path")
    datasets = load_yaml(p).get("datasets")
    if not isinstance(datasets, dict):
        raise ConfigError(f"data catalog {str(p)!r} needs a top-level `datasets:` mapping")
    return datasets


def available_datasets(path: str | Path | None = None) -> list[str]:
    return sorted(load_catalog(path))


def get_dataset(name: str, *, path: str | Path | None = None) -> DatasetEntry:
    """Look up a dataset by name; an unknown name lists the valid ones."""
    datasets = load_catalog(path)
    if name not in datasets:
        raise InputError(
            f"unknown dataset {name!r}; datasets in the catalog: {', '.join(sorted(datasets))}"
        )
    raw = dict(datasets[name])
    root = Path(str(raw.get("root", ".")).format(**root_placeholders())).expanduser()
    return DatasetEntry(name=name, task=str(raw.get("task", "")), root=root, raw=raw)


def resolve_road_inputs(entry: DatasetEntry) -> RoadInputs:
    """(image, centerlines) pairs of a road dataset; generates the demo scene if needed.

    Raises:
        InputError: the entry is not a road dataset, or its files are missing (the message
            names the expected layout from the entry's description).
    """
    if entry.task != "roads":
        raise InputError(f"dataset {entry.name!r} is a {entry.task!r} dataset, not a road dataset (task: roads)")
    bands = entry.raw.get("bands")
    if entry.raw.get("generator") == "demo_scene":
        image, centerlines, aoi = ensure_demo_scene(entry)
        return RoadInputs(sources=[(image, centerlines)], aoi=aoi, bands=bands)
    pattern = entry.raw.get("pan") or entry.raw["images"]
    images = sorted(entry.root.glob(pattern))
    if not images:
        raise InputFileNotFoundError(
            f"dataset {entry.name!r}: no images match {pattern!r} under {str(entry.root)!r}"
            f"{_where_hint(entry)}; expected layout: {entry.description}"
        )
    sources = [(img, _centerlines_for(entry, img)) for img in images]
    aoi = entry.root / entry.raw["aoi"] if entry.raw.get("aoi") else None
    if entry.raw.get("pan"):
        from geodefect.io.pansharpen import pansharpened_path, resolve_mul_bands

        mul = [_mul_for(entry, img) for img, _ in sources]
        spec = {"mul_bands": resolve_mul_bands(entry.raw.get("mul_bands"), mul[0])}
        sources = [(Path(pansharpened_path(img, m, spec["mul_bands"])), c) for (img, c), m in zip(sources, mul, strict=True)]
        return RoadInputs(sources=sources, aoi=aoi, bands=None, pan_sharpen=spec)
    return RoadInputs(sources=sources, aoi=aoi, bands=bands)


def _where_hint(entry: DatasetEntry) -> str:
    """How to point a catalog root elsewhere (the env var behind its placeholder)."""
    root = str(entry.raw.get("root", ""))
    for key, var in (("{shared}", "GEODEFECT_SHARED"), ("{data}", "GEODEFECT_DATA"), ("{cache}", "GEODEFECT_CACHE")):
        if root.startswith(key):
            return f" (root {root!r}; set {var} to the folder that holds {root[len(key):].lstrip('/') or 'it'})"
    return f" (root {root!r}; edit the entry in {str(catalog_path())!r} or set GEODEFECT_CATALOG)"


def _mul_for(entry: DatasetEntry, pan: Path) -> Path:
    match = re.search(entry.raw["id_regex"], pan.name)
    if match is None:
        raise InputError(f"dataset {entry.name!r}: image name {pan.name!r} does not match id_regex "
                         f"{entry.raw['id_regex']!r}; fix the catalog entry")
    path = entry.root / entry.raw["mul"].format(id=match.group(1))
    if not path.is_file():
        raise InputFileNotFoundError(f"dataset {entry.name!r}: multispectral raster {str(path)!r} for "
                                     f"{pan.name!r} does not exist; expected layout: {entry.description}")
    return path


def _centerlines_for(entry: DatasetEntry, image: Path) -> Path:
    if "centerlines" in entry.raw:
        return entry.root / entry.raw["centerlines"]
    match = re.search(entry.raw["id_regex"], image.name)
    if match is None:
        raise InputError(
            f"dataset {entry.name!r}: image name {image.name!r} does not match id_regex "
            f"{entry.raw['id_regex']!r}; fix the catalog entry"
        )
    path = entry.root / entry.raw["centerlines_pattern"].format(id=match.group(1))
    if not path.is_file():
        raise InputFileNotFoundError(
            f"dataset {entry.name!r}: centerlines {str(path)!r} for image {image.name!r} do not exist; "
            f"expected layout: {entry.description}"
        )
    return path


def ensure_demo_scene(entry: DatasetEntry) -> tuple[Path, Path, Path]:
    """Generate the demo scene into ``entry.root`` once (atomically).

    Returns:
        ``(image, centerlines, aoi)`` paths.
    """
    from geodefect.io.atomic import atomic_dir
    from geodefect.testing.scenes import make_road_scene

    kwargs = {k: entry.raw[k] for k in ("size_px", "pixel_size_m", "seed") if k in entry.raw}
    done = entry.root / ".complete"
    if not done.is_file():
        with atomic_dir(entry.root, overwrite=True) as tmp:
            scene = make_road_scene(tmp, **kwargs)
            names = (scene.image.name, scene.centerlines.name, scene.aoi.name)
            (tmp / ".names").write_text("\n".join(names) + "\n")
            (tmp / ".complete").write_text("ok\n")
    image, centerlines, aoi = (entry.root / n for n in (entry.root / ".names").read_text().split())
    return image, centerlines, aoi


def resolve_inspection_pairs(entry: DatasetEntry) -> list[tuple[Path, Path]]:
    """(image, mask) pairs of an inspection dataset with ``images`` and ``masks`` entries."""
    images = sorted(entry.root.glob(entry.raw["images"]))
    if not images:
        raise InputFileNotFoundError(
            f"dataset {entry.name!r}: no images match {entry.raw['images']!r} under {str(entry.root)!r}"
        )
    mask_dir = entry.root / entry.raw["masks"]
    suffix = entry.raw.get("mask_suffix", ".png")
    return [(img, mask_dir / f"{img.stem}{suffix}") for img in images]
