"""Random but plausible road networks for synthetic scenes, in scene metres (x right, y down).

A network has a curved arterial, straight secondary roads crossing it (X junctions), a
roundabout where the arterial meets the most central secondary road, an optional diagonal
road, and residential streets between the secondaries: through streets (T junctions at both
ends, aligned across a secondary to make X junctions) and dead ends with a cul-de-sac bulb.
Every road is a directed polyline; directions are random so that all orientations occur.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
import shapely.affinity
import shapely.ops

#: road class -> (min, max) carriageway width in metres
ROAD_WIDTHS_M = {
    "primary": (9.0, 11.0),
    "secondary": (7.0, 8.5),
    "roundabout": (7.0, 8.0),
    "tertiary": (6.0, 7.0),
    "residential": (4.5, 6.0),
}


@dataclass(frozen=True)
class Road:
    """One directed road centerline in scene metres (x right, y down)."""

    line: shapely.LineString
    road_class: str
    width_m: float
    bulb_radius_m: float = 0.0  # > 0: the line ends in a cul-de-sac turning circle


def make_road_network(extent_m: float, rng: np.random.Generator) -> list[Road]:
    """Roads covering a square scene of ``extent_m`` metres; lines are clipped to the scene."""
    arterial = _arterial(extent_m, rng)
    xs = _secondary_positions(extent_m, rng)
    secondaries = [_secondary(x, extent_m, rng) for x in xs]
    roads = [arterial, *secondaries]
    if extent_m >= 150 and rng.random() < 0.8:
        roads.append(_diagonal(extent_m, rng))
    roads += _residential_streets(extent_m, arterial, secondaries, rng)
    if secondaries and extent_m >= 120:
        roads = _add_roundabout(roads, arterial, secondaries, extent_m, rng)
    return _clip_to_scene(roads, extent_m)


def _width(road_class: str, rng: np.random.Generator) -> float:
    lo, hi = ROAD_WIDTHS_M[road_class]
    return float(rng.uniform(lo, hi))


def _directed(coords: np.ndarray, rng: np.random.Generator) -> shapely.LineString:
    return shapely.LineString(coords[::-1] if rng.random() < 0.5 else coords)


def _arterial(extent_m: float, rng: np.random.Generator) -> Road:
    x = np.linspace(-0.05 * extent_m, 1.05 * extent_m, max(int(extent_m / 3), 16))
    amp = rng.uniform(0.05, 0.12) * extent_m
    wavelength = rng.uniform(0.9, 1.6) * extent_m
    y = (rng.uniform(0.35, 0.6) * extent_m + amp * np.sin(2 * np.pi * x / wavelength + rng.uniform(0, 6.3))
         + rng.uniform(-0.1, 0.1) * (x - extent_m / 2))
    return Road(_directed(np.column_stack([x, y]), rng), "primary", _width("primary", rng))


def _secondary_positions(extent_m: float, rng: np.random.Generator) -> list[float]:
    if extent_m < 140:
        return [float(rng.uniform(0.35, 0.65) * extent_m)]
    xs, x = [], rng.uniform(25, 60)
    while x < extent_m - 20:
        xs.append(float(x))
        x += rng.uniform(70, 115)
    return xs


def _secondary_x(road: Road, y: float | np.ndarray) -> np.ndarray:
    """x of a straight (top-to-bottom) secondary road at height y."""
    (x0, y0), (x1, y1) = shapely.get_coordinates(road.line)[[0, -1]]
    return x0 + (x1 - x0) * (np.asarray(y) - y0) / (y1 - y0)


def _secondary(x: float, extent_m: float, rng: np.random.Generator) -> Road:
    tilt = rng.uniform(-0.12, 0.12) * extent_m
    coords = np.array([[x - tilt / 2, -0.05 * extent_m], [x + tilt / 2, 1.05 * extent_m]])
    return Road(_directed(coords, rng), "secondary", _width("secondary", rng))


def _diagonal(extent_m: float, rng: np.random.Generator) -> Road:
    angle = np.radians(rng.uniform(25, 65)) * rng.choice([-1, 1])
    centre = rng.uniform(0.3, 0.7, 2) * extent_m
    half = np.array([np.cos(angle), np.sin(angle)]) * extent_m
    coords = np.array([centre - half, centre + half])
    return Road(_directed(coords, rng), "tertiary", _width("tertiary", rng))


def _residential_streets(
    extent_m: float, arterial: Road, secondaries: list[Road], rng: np.random.Generator
) -> list[Road]:
    """Horizontal-ish streets between consecutive secondaries (or the scene edge)."""
    ys = _street_heights(extent_m, arterial, rng)
    bounds = [-0.05 * extent_m, *[None] * len(secondaries), 1.05 * extent_m]
    streets = []
    for y in ys:
        for k in range(len(bounds) - 1):
            left = bounds[0] if k == 0 else float(_secondary_x(secondaries[k - 1], y))
            right = bounds[-1] if k == len(secondaries) else float(_secondary_x(secondaries[k], y))
            street = _street(left, right, y, extent_m, rng)
            if street is not None:
                streets.append(street)
    return streets


def _street_heights(extent_m: float, arterial: Road, rng: np.random.Generator) -> list[float]:
    """Heights of residential streets, spaced like urban blocks, clear of the arterial."""
    inside = shapely.get_coordinates(arterial.line)
    inside = inside[(inside[:, 0] >= 0) & (inside[:, 0] <= extent_m)]
    lo, hi = inside[:, 1].min() - 20, inside[:, 1].max() + 20
    small = extent_m < 200
    ys, y = [], rng.uniform(10, 25) if small else rng.uniform(20, 45)
    while y < extent_m - 8:
        if not lo < y < hi:
            ys.append(float(y))
            y += rng.uniform(30, 45) if small else rng.uniform(48, 80)
        else:
            y += 5.0
    return ys


def _street(left: float, right: float, y: float, extent_m: float, rng: np.random.Generator) -> Road | None:
    """A through street from left to right, or a dead end from one side with a bulb."""
    if right - left < 25:
        return None
    width = _width("residential", rng)
    kind = rng.choice(["through", "through", "dead_end", "none"], p=[0.45, 0.2, 0.25, 0.1])
    if kind == "none":
        return None
    n = 24
    t = np.linspace(0, 1, n)
    bend = rng.uniform(-8, 8) * np.sin(np.pi * t)  # gentle curve, 0 at both ends
    if kind == "dead_end":
        length = rng.uniform(0.45, 0.7) * (right - left)
        from_left = rng.random() < 0.5
        xs = left + t * length if from_left else right - t * length
        bulb = width * rng.uniform(1.3, 1.7)
        return Road(shapely.LineString(np.column_stack([xs, y + bend * 0.5])), "residential", width, bulb)
    xs = left + t * (right - left)
    return Road(_directed(np.column_stack([xs, y + bend]), rng), "residential", width)


def _add_roundabout(
    roads: list[Road], arterial: Road, secondaries: list[Road], extent_m: float, rng: np.random.Generator
) -> list[Road]:
    """Replace the arterial x central-secondary crossing by a roundabout ring."""
    centre_sec = min(secondaries, key=lambda r: abs(float(_secondary_x(r, extent_m / 2)) - extent_m / 2))
    crossing = arterial.line.intersection(centre_sec.line)
    if crossing.is_empty or crossing.geom_type != "Point":
        return roads
    radius = float(rng.uniform(14, 19))
    ring_angles = np.linspace(0, 2 * np.pi, 49)  # clockwise on screen (y down) = CCW on the map
    ring = np.column_stack([crossing.x + radius * np.cos(-ring_angles), crossing.y + radius * np.sin(-ring_angles)])
    hole = crossing.buffer(radius)
    out = []
    for road in roads:
        if road is arterial or road is centre_sec:
            for part in shapely.get_parts(road.line.difference(hole)):
                out.append(Road(part, road.road_class, road.width_m))
        else:
            out.append(road)
    out.append(Road(shapely.LineString(ring), "roundabout", _width("roundabout", rng)))
    return out


def _clip_to_scene(roads: list[Road], extent_m: float) -> list[Road]:
    scene = shapely.box(0, 0, extent_m, extent_m)
    out = []
    for road in roads:
        clipped = road.line.intersection(scene)
        for part in shapely.get_parts(shapely.line_merge(clipped) if clipped.geom_type != "LineString" else clipped):
            if part.geom_type == "LineString" and part.length > 1.0:
                bulb = road.bulb_radius_m if part.boundary.geoms and _ends_at(part, road.line) else 0.0
                out.append(Road(part, road.road_class, road.width_m, bulb))
    return out


def _ends_at(part: shapely.LineString, line: shapely.LineString) -> bool:
    """True if ``part`` keeps the original line's last point (where a bulb sits)."""
    end = shapely.get_coordinates(line)[-1]
    return bool(np.allclose(shapely.get_coordinates(part)[-1], end, atol=1e-6))
