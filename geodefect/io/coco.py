"""COCO detection JSON (images, annotations, categories), read exactly as written.

Only what geodefect uses is interpreted: each annotation's ``bbox`` ``[x, y, w, h]`` (pixels,
x = column of the box's left edge, y = row of its top edge, floats kept exactly), its image
and its category. ``segmentation`` is kept as given but not interpreted. Ids that point
nowhere and duplicate ids are errors naming the offending annotation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geodefect.errors import InputError, require_file


@dataclass(frozen=True)
class CocoImage:
    id: int
    file_name: str
    width: int
    height: int


@dataclass(frozen=True)
class CocoAnnotation:
    """One annotation; ``bbox`` is ``(x, y, w, h)`` in pixels (floats, exact)."""

    id: int
    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]
    area: float | None = None
    iscrowd: int = 0
    segmentation: Any = None


@dataclass(frozen=True)
class CocoDataset:
    """A COCO file: images and categories by id, annotations in file order."""

    path: Path
    images: dict[int, CocoImage]
    categories: dict[int, str]
    annotations: list[CocoAnnotation] = field(default_factory=list)

    def category_ids(self, names: Iterable[str] | None) -> set[int]:
        """Ids of the named categories (all when ``names`` is None/empty); unknown names -> InputError."""
        if not names:
            return set(self.categories)
        by_name = {name: cid for cid, name in self.categories.items()}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise InputError(
                f"`coco_category` {', '.join(map(repr, unknown))} not in {str(self.path)!r}; "
                f"its categories are: {', '.join(sorted(by_name))}"
            )
        return {by_name[n] for n in names}

    def image_by_name(self) -> dict[str, CocoImage]:
        """Images keyed by ``file_name`` (as written in the file)."""
        return {img.file_name: img for img in self.images.values()}

    def boxes_by_image(self, categories: Iterable[str] | None = None) -> dict[int, list[CocoAnnotation]]:
        """Annotations of the chosen categories, grouped by image id (every image has a key)."""
        keep = self.category_ids(list(categories) if categories else None)
        out: dict[int, list[CocoAnnotation]] = {iid: [] for iid in self.images}
        for ann in self.annotations:
            if ann.category_id in keep:
                out[ann.image_id].append(ann)
        return out


def read_coco(path: str | Path) -> CocoDataset:
    """Read a COCO JSON file.

    Raises:
        InputFileNotFoundError: the file does not exist.
        InputError: not JSON, missing ``images``/``annotations``/``categories``, duplicate
            ids, or an annotation whose image or category id is not defined.
    """
    p = Path(path)
    require_file(p, what="COCO file")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"COCO file {str(p)!r} is not valid JSON ({exc.__class__.__name__}); check the file") from None
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data, dict) or k not in data]
    if missing:
        raise InputError(f"COCO file {str(p)!r} lacks {', '.join(missing)}; expected a COCO detection file")
    images = _unique({}, (_parse_image(p, d) for d in data["images"]), p, "image")
    categories: dict[int, str] = {}
    for d in data["categories"]:
        cid = int(d["id"])
        if cid in categories:
            raise InputError(f"COCO file {str(p)!r}: category id {cid} is defined twice")
        categories[cid] = str(d["name"])
    annotations = [_parse_annotation(p, d, images, categories) for d in data["annotations"]]
    ids = [a.id for a in annotations]
    if len(set(ids)) != len(ids):
        raise InputError(f"COCO file {str(p)!r}: annotation ids are not unique; fix the file")
    return CocoDataset(path=p, images=images, categories=categories, annotations=annotations)


def _unique(out: dict, items: Iterable, path: Path, what: str) -> dict:
    for item in items:
        if item.id in out:
            raise InputError(f"COCO file {str(path)!r}: {what} id {item.id} is defined twice")
        out[item.id] = item
    return out


def _parse_image(path: Path, d: dict) -> CocoImage:
    try:
        return CocoImage(id=int(d["id"]), file_name=str(d["file_name"]), width=int(d["width"]), height=int(d["height"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"COCO file {str(path)!r}: image entry {d!r} lacks id/file_name/width/height ({exc})") from None


def _parse_annotation(path: Path, d: dict, images: dict, categories: dict) -> CocoAnnotation:
    try:
        bbox = tuple(float(v) for v in d["bbox"])
        ann = CocoAnnotation(
            id=int(d["id"]), image_id=int(d["image_id"]), category_id=int(d["category_id"]), bbox=bbox,
            area=None if d.get("area") is None else float(d["area"]), iscrowd=int(d.get("iscrowd", 0)),
            segmentation=d.get("segmentation"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"COCO file {str(path)!r}: annotation {d.get('id')!r} is malformed ({exc}); expected id, image_id, category_id, bbox") from None
    if len(bbox) != 4 or bbox[2] < 0 or bbox[3] < 0:
        raise InputError(f"COCO file {str(path)!r}: annotation {ann.id} has bbox {list(bbox)}; expected [x, y, w, h] with w, h >= 0")
    if ann.image_id not in images:
        raise InputError(f"COCO file {str(path)!r}: annotation {ann.id} refers to image id {ann.image_id}, which is not in `images`")
    if ann.category_id not in categories:
        raise InputError(f"COCO file {str(path)!r}: annotation {ann.id} refers to category id {ann.category_id}, which is not in `categories`")
    return ann
