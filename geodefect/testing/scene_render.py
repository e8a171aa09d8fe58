"""Paint a synthetic aerial image of a road network (numpy, vectorised; no per-pixel loops).

Layers, bottom to top: textured ground (grass, dry grass and soil at several scales), parking
lots (grey like asphalt, with stall lines), sidewalks, roads (per-road asphalt or concrete
tone, texture, repairs, dashed centre and edge markings), cars, shadows of buildings and
trees, buildings (roof colours including asphalt grey, gable shading, dark edges), trees
(round lumpy dark-green canopies, street trees overhanging the road edges), then light
fall-off, blur and sensor noise. Geometry is in scene metres (x right, y down); everything
is rasterized with ``Affine.scale(pixel_size_m)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
import shapely.affinity
import shapely.ops
from affine import Affine
from rasterio.features import rasterize
from scipy import ndimage

from geodefect.testing.road_network import Road

ROOF_COLOURS = np.array([
    [96, 96, 100], [80, 82, 86], [118, 116, 114], [70, 72, 78],  # asphalt/slate greys
    [168, 92, 68], [150, 80, 60], [185, 110, 80],  # tiles
    [205, 200, 192], [225, 222, 215],  # white/light flat roofs
    [120, 100, 82], [95, 112, 96],  # brown, green-ish
], dtype=np.float32)
CAR_COLOURS = np.array([
    [230, 230, 232], [25, 25, 30], [160, 163, 168], [150, 30, 30], [35, 60, 130], [90, 90, 95],
], dtype=np.float32)


@dataclass(frozen=True)
class Canvas:
    """Pixel grid of the scene: ``size_px`` square pixels of ``pixel_size_m``."""

    size_px: int
    pixel_size_m: float

    @property
    def shape(self) -> tuple[int, int]:
        return (self.size_px, self.size_px)

    @property
    def transform(self) -> Affine:
        return Affine.scale(self.pixel_size_m)

    def burn(self, geoms, values=None, *, all_touched: bool = False) -> np.ndarray:
        """Rasterize geometries in scene metres; values default to 1..n (later wins)."""
        geoms = [g for g in geoms if g is not None and not g.is_empty]
        if not geoms:
            return np.zeros(self.shape, np.int32)
        values = range(1, len(geoms) + 1) if values is None else values
        return rasterize(zip(geoms, values, strict=True), out_shape=self.shape, transform=self.transform,
                         fill=0, dtype="int32", all_touched=all_touched)

    def noise(self, cell_m: float, rng: np.random.Generator) -> np.ndarray:
        """Smooth zero-mean, unit-variance noise with features about ``cell_m`` metres wide.

        White noise on a coarse grid, upsampled along each axis by cubic B-spline weights
        (4 taps, elementwise multiply-adds: the same bytes on every CPU, unlike a BLAS matrix
        product) — smooth, and ~0.2 s for 2048² where ``ndimage.zoom`` took ~0.7 s.
        """
        cell = cell_m / self.pixel_size_m
        if cell <= 1.5:
            return rng.standard_normal(self.shape, dtype=np.float32)
        n = int(np.ceil(self.size_px / cell)) + 4
        coarse = rng.standard_normal((n, n), dtype=np.float32)
        first, weights = _bspline_taps(self.size_px, cell, n)
        rows = sum(weights[k][:, None] * coarse[first + k] for k in range(4))  # (size, n)
        cols = np.ascontiguousarray(rows.T)  # (n, size): the second pass gathers whole rows too
        field = sum(weights[k][:, None] * cols[first + k] for k in range(4))  # transposed field
        sample = field[::7, ::7]
        return (field - sample.mean()) / (sample.std() + 1e-6)


def _bspline_taps(size_px: int, cell: float, n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """First coarse node of each fine pixel and the 4 cubic B-spline weights (float32)."""
    pos = (np.arange(size_px) + 0.5) / cell + 1.5
    first = np.floor(pos).astype(np.int64) - 1
    weights = []
    for k in range(4):
        t = np.abs(pos - (first + k))
        w = np.where(t < 1, 2 / 3 - t**2 + t**3 / 2, np.where(t < 2, (2 - t) ** 3 / 6, 0.0))
        weights.append(w.astype(np.float32))
    return np.clip(first, 0, n - 4), weights


@dataclass(frozen=True)
class Textures:
    """Noise fields shared by the layers (each layer uses them flipped or scaled differently)."""

    fine: np.ndarray  # 1 px white noise
    small: np.ndarray  # ~0.9 m
    mid: np.ndarray  # ~6 m
    big: np.ndarray  # ~45 m
    huge: np.ndarray  # ~150 m

    @classmethod
    def make(cls, canvas: Canvas, rng: np.random.Generator) -> Textures:
        return cls(*(canvas.noise(c, rng) for c in (0.3, 0.9, 6.0, 45.0, 150.0)))


def render_scene(roads: list[Road], canvas: Canvas, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Paint the scene.

    Returns:
        ``(image, road_mask)``: image (3, H, W) uint8 RGB; road_mask (H, W) uint8 0/1 of
        the carriageways (before occlusion by trees, cars and shadows).
    """
    tex = Textures.make(canvas, rng)
    rgb = _ground(tex)
    road_polys = [_road_polygon(r) for r in roads]
    road_idx = canvas.burn(road_polys)
    road_mask = road_idx > 0
    walks = _sidewalks(roads, road_polys)
    lots = _parking_lots(canvas, road_polys, rng)
    _paint_flat(rgb, canvas.burn(lots) > 0, (118, 116, 112), 0.06, tex.small[::-1], tex.mid[:, ::-1])
    _paint_stalls(rgb, lots, canvas)
    _paint_flat(rgb, (canvas.burn(walks) > 0) & ~road_mask, (168, 164, 156), 0.05, tex.small.T, tex.mid.T)
    _paint_roads(rgb, roads, road_idx, tex, rng)
    _paint_markings(rgb, roads, canvas, tex, rng)
    _paint_cars(rgb, roads, canvas, tex, rng)
    occupied = np.concatenate([road_polys, walks, lots])
    buildings, heights = _buildings(canvas, occupied, rng)
    drives = _driveways(buildings, road_polys, rng)
    _paint_flat(rgb, canvas.burn(drives) > 0, (rng.uniform(100, 150),) * 3, 0.06, tex.small[::-1].T, tex.mid)
    trees, tree_radii, tree_heights = _trees(canvas, roads, buildings, occupied, rng)
    sun = _sun_offset(rng)
    shadows = [_shadow(b, h, sun) for b, h in zip(buildings, heights, strict=True)]
    shadows += [shapely.affinity.translate(t, *(sun * h)) for t, h in zip(trees, tree_heights, strict=True)]
    shade = canvas.burn(shadows) > 0
    rgb[:, shade] *= np.array([0.56, 0.58, 0.64], np.float32)[:, None]
    _paint_buildings(rgb, buildings, canvas, tex, rng)
    _paint_trees(rgb, trees, tree_radii, canvas, tex, rng)
    return _finish(rgb, tex, rng), road_mask.astype(np.uint8)


def _ground(tex: Textures) -> np.ndarray:
    grass = np.array([70, 96, 48], np.float32)[:, None, None]
    dry = np.array([128, 124, 80], np.float32)[:, None, None]
    soil = np.array([122, 98, 74], np.float32)[:, None, None]
    mid, big = tex.mid, tex.big
    w_dry = 1 / (1 + np.exp(-(1.4 * mid + 0.8 * big)))
    w_soil = 1 / (1 + np.exp(-3 * (big + 0.4 * mid[::-1, ::-1] - 1.1)))
    rgb = (grass * (1 - w_dry) + dry * w_dry) * (1 - w_soil) + soil * w_soil
    return rgb * (1 + 0.07 * tex.small + 0.05 * tex.fine + 0.04 * mid[:, ::-1])


def _road_polygon(road: Road) -> shapely.Geometry:
    poly = road.line.buffer(road.width_m / 2, cap_style="flat" if road.bulb_radius_m == 0 else "round")
    if road.bulb_radius_m > 0:
        end = shapely.Point(shapely.get_coordinates(road.line)[-1])
        poly = poly.union(end.buffer(road.bulb_radius_m))
    return poly


def _sidewalks(roads: list[Road], road_polys: list) -> list:
    return [r.line.buffer(r.width_m / 2 + 1.8, cap_style="flat").difference(p)
            for r, p in zip(roads, road_polys, strict=True) if r.road_class in ("primary", "secondary", "tertiary")]


def _paint_flat(rgb, mask, colour, texture: float, small: np.ndarray, mid: np.ndarray) -> None:
    tone = 1 + texture * small[mask] + 0.5 * texture * mid[mask]
    rgb[:, mask] = np.asarray(colour, np.float32)[:, None] * tone


def _paint_roads(rgb, roads: list[Road], road_idx: np.ndarray, tex: Textures, rng) -> None:
    """Per-road asphalt/concrete tone, grain, dark repair patches and light wear."""
    n = len(roads)
    grey = rng.uniform(72, 138, n + 1).astype(np.float32)
    tint = rng.normal(0, 4, (n + 1, 3)).astype(np.float32)
    base = grey[:, None] + tint + np.array([0, 0, 3], np.float32)  # slightly blue asphalt
    m = road_idx > 0
    patches = tex.mid[::-1][m]
    tone = 1 + 0.05 * tex.fine[::-1][m] + 0.06 * tex.small[:, ::-1][m] - 0.12 * (patches > 1.3) + 0.03 * patches
    rgb[:, m] = base[road_idx[m]].T * tone


def _paint_markings(rgb, roads: list[Road], canvas: Canvas, tex: Textures, rng) -> None:
    width_m = max(0.2, canvas.pixel_size_m)
    dashes, edges = [], []
    for r in roads:
        if r.width_m >= 6.5 and r.road_class != "roundabout":
            dashes += _dashes(r.line, dash_m=3.0, gap_m=5.0)
        if r.road_class == "primary":
            for side in (-1, 1):
                off = r.line.offset_curve(side * (r.width_m / 2 - 0.6))
                if not off.is_empty:
                    edges.append(off)
    lines = [g.buffer(width_m / 2, cap_style="flat") for g in dashes + edges]
    mark = canvas.burn(lines) > 0
    worn = 1 + 0.08 * tex.fine.T[mark] - 0.1 * np.clip(tex.small[mark], 0, None)
    rgb[:, mark] = rng.uniform(200, 232) * worn


def _dashes(line: shapely.LineString, *, dash_m: float, gap_m: float) -> list:
    starts = np.arange(0.0, line.length - dash_m, dash_m + gap_m)
    return [shapely.ops.substring(line, s, s + dash_m) for s in starts]


def _paint_cars(rgb, roads: list[Road], canvas: Canvas, tex: Textures, rng) -> None:
    cars, colours = [], []
    for r in roads:
        for d in rng.uniform(0, r.line.length, rng.poisson(r.line.length / 30)):
            cars.append(_car(r, float(d), rng))
            colours.append(rng.integers(len(CAR_COLOURS)))
    if not cars:
        return
    idx = canvas.burn(cars)
    m = idx > 0
    col = CAR_COLOURS[np.asarray(colours)][idx[m] - 1]
    rgb[:, m] = col.T * (1 + 0.04 * tex.fine[m])


def _car(road: Road, dist_m: float, rng) -> shapely.Geometry:
    p0 = road.line.interpolate(max(dist_m - 0.5, 0))
    p1 = road.line.interpolate(min(dist_m + 0.5, road.line.length))
    angle = np.degrees(np.arctan2(p1.y - p0.y, p1.x - p0.x))
    lane = road.width_m / 4 * rng.choice([-1, 1])
    nx, ny = -np.sin(np.radians(angle)), np.cos(np.radians(angle))
    cx, cy = (p0.x + p1.x) / 2 + lane * nx, (p0.y + p1.y) / 2 + lane * ny
    body = shapely.box(-2.2, -0.9, 2.2, 0.9)
    return shapely.affinity.translate(shapely.affinity.rotate(body, angle, origin=(0, 0)), cx, cy)


def _parking_lots(canvas: Canvas, road_polys: list, rng) -> list:
    """Grey asphalt lots off the roads: the hard negatives."""
    extent = canvas.size_px * canvas.pixel_size_m
    roads = shapely.union_all(road_polys).buffer(4)
    lots = []
    for _ in range(rng.poisson(extent * extent / 25000) + 1):
        w, h = rng.uniform(15, 30), rng.uniform(12, 22)
        c = rng.uniform(0, extent, 2)
        lot = shapely.affinity.rotate(shapely.box(c[0] - w / 2, c[1] - h / 2, c[0] + w / 2, c[1] + h / 2),
                                      rng.uniform(-10, 10))
        if not lot.intersects(roads) and not any(lot.intersects(o) for o in lots):
            lots.append(lot)
    return lots


def _paint_stalls(rgb, lots: list, canvas: Canvas) -> None:
    stalls = []
    for lot in lots:
        minx, miny, maxx, maxy = lot.bounds
        for x in np.arange(minx + 2.5, maxx - 1, 2.5):
            stalls.append(shapely.LineString([(x, miny + 1), (x, miny + 5.5)]).buffer(0.12))
    mark = (canvas.burn(stalls, all_touched=True) > 0) & (canvas.burn(lots) > 0)
    rgb[:, mark] = 215.0


def _buildings(canvas: Canvas, occupied: np.ndarray, rng) -> tuple[list, np.ndarray]:
    extent = canvas.size_px * canvas.pixel_size_m
    spacing = 19.0
    grid = np.arange(spacing / 2, extent, spacing)
    cx, cy = (a.ravel() for a in np.meshgrid(grid, grid))
    cx = cx + rng.uniform(-4, 4, cx.size)
    cy = cy + rng.uniform(-4, 4, cy.size)
    w, h = rng.uniform(7, 15, cx.size), rng.uniform(6, 12, cx.size)
    angle = rng.choice([0.0, 90.0], cx.size) + rng.uniform(-12, 12, cx.size)
    boxes = shapely.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    boxes = np.array([shapely.affinity.rotate(b, a) for b, a in zip(boxes, angle, strict=True)])
    clearance = shapely.union_all(occupied).buffer(2.0)
    keep = ~shapely.intersects(boxes, clearance) & (rng.random(cx.size) < 0.8)
    return list(boxes[keep]), rng.uniform(4, 14, int(keep.sum()))


def _driveways(buildings: list, road_polys: list, rng) -> list:
    """Paved strips from some buildings to the nearest road edge: road-like, but not roads."""
    if not buildings or not road_polys:
        return []
    roads = shapely.union_all(road_polys)
    drives = []
    for b in buildings:
        if rng.random() < 0.35:
            _, edge = shapely.ops.nearest_points(b.centroid, roads)
            strip = shapely.LineString([b.centroid, edge]).buffer(rng.uniform(1.2, 1.8), cap_style="flat")
            drives.append(strip.difference(roads))
    return drives


def _trees(canvas: Canvas, roads: list[Road], buildings: list, occupied: np.ndarray, rng):
    """Street trees overhanging road edges, and garden trees off roads and buildings.

    Returns:
        ``(canopies, radii_m, heights_m)``.
    """
    centres, radii = [], []
    for r in roads:
        if r.road_class == "roundabout" or rng.random() < 0.45:
            continue
        for side in (-1, 1):
            off = r.line.offset_curve(side * (r.width_m / 2 + rng.uniform(0.5, 2.5)))
            if off.is_empty:
                continue
            for d in np.arange(rng.uniform(0, 10), off.length, rng.uniform(11, 18)):
                p = off.interpolate(d)
                centres.append((p.x, p.y))
                radii.append(rng.uniform(2.5, 4.5))
    extent = canvas.size_px * canvas.pixel_size_m
    free = rng.uniform(0, extent, (rng.poisson(extent * extent / 450), 2))
    if len(free):
        blocked = shapely.union_all([*buildings, *occupied])
        free = free[~shapely.intersects(shapely.points(free), blocked)]
    centres += [tuple(p) for p in free]
    radii += list(rng.uniform(1.8, 4.0, len(free)))
    canopies = [_canopy(c, r, rng) for c, r in zip(centres, radii, strict=True)]
    return canopies, np.asarray(radii), rng.uniform(5, 12, len(canopies))


def _canopy(centre, radius: float, rng) -> shapely.Polygon:
    a = np.linspace(0, 2 * np.pi, 19)[:-1]
    wobble = 1 + 0.12 * np.sin(3 * a + rng.uniform(0, 6.3)) + 0.06 * rng.standard_normal(a.size)
    return shapely.Polygon(np.column_stack([centre[0] + radius * wobble * np.cos(a),
                                            centre[1] + radius * wobble * np.sin(a)]))


def _sun_offset(rng) -> np.ndarray:
    az = rng.uniform(0, 2 * np.pi)
    return 0.7 * np.array([np.cos(az), np.sin(az)])  # shadow metres per metre of height


def _shadow(building, height: float, sun: np.ndarray):
    moved = shapely.affinity.translate(building, *(sun * height))
    return shapely.union_all([building, moved]).convex_hull


def _pixel_offsets(canvas: Canvas, m: np.ndarray, centres: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, ...]:
    """Metres from each masked pixel's centre to the centre of the object ``k`` it belongs to."""
    rows, cols = np.nonzero(m)
    x = (cols + 0.5) * canvas.pixel_size_m - centres[k, 0]
    y = (rows + 0.5) * canvas.pixel_size_m - centres[k, 1]
    return x, y


def _edges(idx: np.ndarray) -> np.ndarray:
    """Pixels whose 4-neighbourhood holds another label (object outlines)."""
    edge = np.zeros(idx.shape, bool)
    edge[1:] |= idx[1:] != idx[:-1]
    edge[:-1] |= idx[:-1] != idx[1:]
    edge[:, 1:] |= idx[:, 1:] != idx[:, :-1]
    edge[:, :-1] |= idx[:, :-1] != idx[:, 1:]
    return edge


def _paint_buildings(rgb, buildings: list, canvas: Canvas, tex: Textures, rng) -> None:
    """Roofs in varied colours (greys like asphalt included), two gable faces, dark eaves."""
    if not buildings:
        return
    idx = canvas.burn(buildings)
    m = idx > 0
    colours = ROOF_COLOURS[rng.integers(len(ROOF_COLOURS), size=len(buildings))]
    colours *= rng.uniform(0.9, 1.1, (len(colours), 1)).astype(np.float32)
    bitumen = rng.random(len(buildings)) < 0.3  # flat roofs in the same greys as the roads
    colours[bitumen] = rng.uniform(72, 138, (int(bitumen.sum()), 1)) + rng.normal(0, 3, (int(bitumen.sum()), 3))
    k = idx[m] - 1
    x, y = _pixel_offsets(canvas, m, shapely.get_coordinates(shapely.centroid(buildings)), k)
    gable = np.where((x * 0.3 + y) > 0, 1.0, 0.82).astype(np.float32)
    tone = gable * np.where(_edges(idx)[m], 0.78, 1.0) * (1 + 0.04 * tex.fine.T[m])
    rgb[:, m] = colours[k].T * tone


def _paint_trees(rgb, trees: list, radii: np.ndarray, canvas: Canvas, tex: Textures, rng) -> None:
    """Dark-green canopies, brighter towards the crown, with leaf-scale texture."""
    if not trees:
        return
    idx = canvas.burn(trees)
    m = idx > 0
    k = idx[m] - 1
    centres = np.array([t.centroid.coords[0] for t in trees])
    x, y = _pixel_offsets(canvas, m, centres, k)
    depth = np.clip(1 - np.hypot(x, y) / radii[k], 0, 1)
    green = np.array([44, 72, 36], np.float32) * rng.uniform(0.8, 1.25, (len(trees), 1)).astype(np.float32)
    tone = (0.7 + 0.35 * depth) * (1 + 0.22 * tex.small[::-1, ::-1][m] + 0.08 * tex.fine[::-1][m])
    rgb[:, m] = green[k].T * tone


def _finish(rgb: np.ndarray, tex: Textures, rng) -> np.ndarray:
    """Uneven light, optics blur and sensor noise, then uint8."""
    rgb *= 1 + 0.06 * tex.huge
    for band in rgb:
        ndimage.gaussian_filter(band, 0.6, output=band)
        band += 2.5 * rng.standard_normal(band.shape, dtype=np.float32)
    np.clip(rgb, 0, 255, out=rgb)
    return np.rint(rgb, out=rgb).astype(np.uint8)
