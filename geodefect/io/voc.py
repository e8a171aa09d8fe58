"""An exact Pascal VOC XML reader (the annotation format of RDD2020/RDD2022).

One ``<annotation>`` per image::

    <annotation>
      <filename>Japan_000042.jpg</filename>
      <size><width>600</width><height>600</height><depth>3</depth></size>   (may be missing)
      <object>
        <name>D00</name> <truncated>0</truncated> <difficult>0</difficult>
        <bndbox><xmin>12.5</xmin><ymin>300</ymin><xmax>80</xmax><ymax>420.25</ymax></bndbox>
      </object> ...
    </annotation>

RDD quirks handled here: coordinates may be floats (Norway, United States); ``<size>`` may be
missing (then :attr:`VocAnnotation.width_px`/``height_px`` are ``None`` and callers read the
image size); class names include D00/D10/D20/D40 and others (D01, D0w0, D11, D43, D44, D50,
"Repair", "Block crack") that callers ignore through ``ignore_classes``.

Decisions (issue 6, "XML without boxes -> clear errors"): an annotation with *no* ``<object>``
is valid: RDD ships many images without damage; they are negatives at image level and give no
crop. An ``<object>`` without a usable ``<bndbox>`` (missing, non-numeric, or empty box) is
malformed and raises :class:`~geodefect.errors.InputError` naming the file. An unknown class
raises unless it is in ``ignore_classes``.

Coordinates are kept exactly as written (floats, VOC's 1-based pixel convention, no clipping);
:func:`box_to_pixel_slices` turns a box into array slices in one documented place.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from geodefect.errors import InputError, InputFileNotFoundError

log = logging.getLogger(__name__)

#: the four damage classes of the CRDDC'2022 benchmark
RDD_CLASSES: tuple[str, ...] = ("D00", "D10", "D20", "D40")
#: other class names found in RDD2020/RDD2022 annotations (ignored by default)
RDD_IGNORED_CLASSES: tuple[str, ...] = (
    "D01", "D0w0", "D11", "D43", "D44", "D50", "Repair", "Block crack",
)
from geodefect.io.image import IMAGE_SUFFIXES  # noqa: E402  (the one list)


@dataclass(frozen=True)
class VocObject:
    """One box. Coordinates in pixels exactly as in the XML (floats allowed)."""

    name: str
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    difficult: bool = False
    truncated: bool = False

    @property
    def width_px(self) -> float:
        return self.xmax - self.xmin

    @property
    def height_px(self) -> float:
        return self.ymax - self.ymin

    @property
    def area_px2(self) -> float:
        """Box area in px² (``width_px * height_px``)."""
        return self.width_px * self.height_px


@dataclass(frozen=True)
class VocAnnotation:
    """One annotation file. ``width_px``/``height_px``/``depth`` are None when ``<size>`` is missing."""

    path: Path
    filename: str | None
    width_px: int | None
    height_px: int | None
    depth: int | None
    objects: tuple[VocObject, ...]
    n_ignored: int = 0

    @property
    def is_negative(self) -> bool:
        """True when the image has no box of a kept class (a 'no damage' image)."""
        return not self.objects


def read_voc(
    path: str | Path,
    *,
    classes: Iterable[str] | None = None,
    ignore_classes: Iterable[str] = RDD_IGNORED_CLASSES,
) -> VocAnnotation:
    """Read one Pascal VOC XML file.

    Args:
        path: the ``.xml`` file.
        classes: the class names to keep; ``None`` keeps every name.
        ignore_classes: names dropped silently (counted in ``n_ignored``) when ``classes`` is given.

    Returns:
        The annotation with the kept objects, in file order.

    Raises:
        InputFileNotFoundError: the file does not exist.
        InputError: not XML / not an ``<annotation>``; an object without name or usable bndbox;
            an unknown class name. Every message names the file.
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileNotFoundError(f"annotation file {str(p)!r} does not exist; check the path")
    root = _parse_root(p)
    keep = None if classes is None else set(classes)
    ignore = set(ignore_classes)
    objects: list[VocObject] = []
    n_ignored = 0
    for i, node in enumerate(root.findall("object")):
        obj = _read_object(node, p, i)
        if keep is not None and obj.name not in keep:
            if obj.name in ignore:
                n_ignored += 1
                continue
            raise InputError(
                f"annotation {str(p)!r}: object {i} has unknown class {obj.name!r}; expected one of "
                f"{', '.join(sorted(keep))} (or add it to the ignored classes)"
            )
        objects.append(obj)
    width, height, depth = _read_size(root, p)
    return VocAnnotation(
        path=p,
        filename=_text(root, "filename"),
        width_px=width,
        height_px=height,
        depth=depth,
        objects=tuple(objects),
        n_ignored=n_ignored,
    )


def write_voc(path: str | Path, *, filename: str, size: tuple[int, int, int] | None, objects: Iterable[VocObject]) -> None:
    """Write a VOC XML file (used by the synthetic generators). ``size`` is (width, height, depth)."""
    from geodefect.io.atomic import write_text_atomic

    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "images"
    ET.SubElement(root, "filename").text = filename
    if size is not None:
        s = ET.SubElement(root, "size")
        for tag, value in zip(("width", "height", "depth"), size, strict=True):
            ET.SubElement(s, tag).text = str(int(value))
    for obj in objects:
        o = ET.SubElement(root, "object")
        ET.SubElement(o, "name").text = obj.name
        ET.SubElement(o, "truncated").text = str(int(obj.truncated))
        ET.SubElement(o, "difficult").text = str(int(obj.difficult))
        b = ET.SubElement(o, "bndbox")
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            ET.SubElement(b, tag).text = _format_number(getattr(obj, tag))
    ET.indent(root)
    write_text_atomic(path, ET.tostring(root, encoding="unicode") + "\n")


def find_image(annotation: VocAnnotation, images_dir: str | Path) -> Path:
    """The image an annotation describes: ``<filename>`` in ``images_dir``, else the XML's stem.

    Raises:
        InputFileNotFoundError: naming the annotation and the paths tried.
    """
    d = Path(images_dir)
    tried = []
    if annotation.filename:
        candidate = d / Path(annotation.filename).name
        tried.append(candidate)
        if candidate.is_file():
            return candidate
    for suffix in (*IMAGE_SUFFIXES, *(x.upper() for x in IMAGE_SUFFIXES)):
        candidate = d / f"{annotation.path.stem}{suffix}"
        if candidate.is_file():
            return candidate
    tried.append(d / f"{annotation.path.stem}.jpg")
    raise InputFileNotFoundError(
        f"image for annotation {str(annotation.path)!r} is missing (tried {', '.join(map(str, tried))}); "
        "put the image next to the others or remove the annotation"
    )


def box_to_pixel_slices(obj: VocObject, *, width_px: int, height_px: int) -> tuple[slice, slice]:
    """Row and column slices of a box, clipped to the image.

    VOC boxes are inclusive and 1-based (``xmin=1`` is the first column); float coordinates
    are rounded. Returns ``(rows, cols)`` for ``array[rows, cols]``; an empty slice when the
    box lies outside the image.
    """
    c0 = min(max(round(obj.xmin) - 1, 0), width_px)
    r0 = min(max(round(obj.ymin) - 1, 0), height_px)
    c1 = min(max(round(obj.xmax), c0), width_px)
    r1 = min(max(round(obj.ymax), r0), height_px)
    return slice(r0, r1), slice(c0, c1)


def _parse_root(p: Path) -> ET.Element:
    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as exc:
        raise InputError(f"annotation {str(p)!r} is not valid XML ({exc}); fix or remove the file") from None
    if root.tag != "annotation":
        raise InputError(f"annotation {str(p)!r} has root <{root.tag}>, expected a Pascal VOC <annotation>")
    return root


def _read_object(node: ET.Element, p: Path, i: int) -> VocObject:
    name = _text(node, "name")
    if not name:
        raise InputError(f"annotation {str(p)!r}: object {i} has no <name>; every object needs a class name")
    box = node.find("bndbox")
    if box is None:
        raise InputError(f"annotation {str(p)!r}: object {i} ({name}) has no <bndbox>; the XML is malformed")
    coords = {}
    for tag in ("xmin", "ymin", "xmax", "ymax"):
        raw = _text(box, tag)
        try:
            coords[tag] = float(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InputError(
                f"annotation {str(p)!r}: object {i} ({name}) has <{tag}> {raw!r}, expected a number"
            ) from None
    if not (coords["xmax"] > coords["xmin"] and coords["ymax"] > coords["ymin"]):
        raise InputError(
            f"annotation {str(p)!r}: object {i} ({name}) has an empty box "
            f"(xmin={coords['xmin']}, xmax={coords['xmax']}, ymin={coords['ymin']}, ymax={coords['ymax']}); "
            "expected xmax > xmin and ymax > ymin"
        )
    return VocObject(
        name=name,
        difficult=_flag(node, "difficult"),
        truncated=_flag(node, "truncated"),
        **coords,
    )


def _read_size(root: ET.Element, p: Path) -> tuple[int | None, int | None, int | None]:
    size = root.find("size")
    if size is None:
        return None, None, None
    values = []
    for tag in ("width", "height", "depth"):
        raw = _text(size, tag)
        try:
            values.append(int(float(raw)) if raw else None)  # "600.0" occurs too
        except ValueError:
            raise InputError(f"annotation {str(p)!r}: <size><{tag}> is {raw!r}, expected an integer") from None
    width, height, depth = values
    if not width or not height:  # <width>0</width> occurs in some RDD files: treat as unknown
        return None, None, depth
    return width, height, depth


def _text(node: ET.Element, tag: str) -> str | None:
    child = node.find(tag)
    if child is None or child.text is None:
        return None
    return child.text.strip() or None


def _flag(node: ET.Element, tag: str) -> bool:
    raw = _text(node, tag)
    if raw is None:
        return False
    try:
        return bool(int(float(raw)))
    except ValueError:
        return raw.lower() == "true"


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
