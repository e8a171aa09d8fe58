"""Vectorisation in bounded memory: thin and graph the raster block by block, join at the seams.

The whole-raster path (:mod:`geodefect.graph.vectorize`) holds the (H, W) mask and skeleton,
so its memory grows with the area. Here:

1. The raster is cut into core blocks of ``block_px`` (a grid from the top-left pixel). Each
   block is read with a halo of ``halo_px`` (its top-left corner moved back to a multiple of
   the junction cell size, so that large junction clusters are cut into the same cells as in
   the whole raster), its road mask computed exactly as the whole path does
   (:class:`~geodefect.graph.block_reader.MaskWindows`), thinned with the same
   ``skeletonize_mask`` and turned into a pixel graph by the same ``skeleton_to_graph``.
2. Of each block's graph only the pieces its core owns are kept (:mod:`geodefect.graph.seams`:
   every path segment belongs to exactly one block) and the pieces of all blocks are joined
   into one graph where their ends coincide. With a halo wider than the thinning's reach
   (about half the widest road) and the largest junction cluster, this is the whole path's
   pixel graph, cut into more edges at the seams.
3. The same steps as the whole path then run on that graph (``vectorize.finish_network``:
   chain merge -- which removes the seam nodes --, cut ends, hole loops, spurs, junction merge,
   bridging, wide spurs, small components, simplification). They read the mask and the
   probabilities only near nodes and along edges, through tiled, cached, recomputed windows
   (:class:`~geodefect.graph.block_reader.BlockedRaster`).

Memory: one block with its halo (mask, skeleton, thinning buffers, probability), the cached
tiles (about 10 MiB) and the graph, whatever the raster's size. With the CLI's allocator settings
(``geodefect.alloc.tune_malloc``: arrays up to 256 MiB from the heap) the blocks' arrays would stay
pinned under the graph pieces made between them; the block loop runs with large requests mapped
(``alloc.large_blocks_unmapped``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import numpy as np

from geodefect.alloc import large_blocks_unmapped, release_free_memory
from geodefect.errors import InputError
from geodefect.graph.block_reader import (
    MAX_OBJECT_MARGIN_PX,
    BlockedRaster,
    MaskWindows,
    WindowSource,
)
from geodefect.graph.build import skeleton_to_graph
from geodefect.graph.network import RoadNetwork
from geodefect.graph.seams import join_pieces, owned_pieces
from geodefect.graph.simplify import merge_degree_two
from geodefect.graph.skeleton import skeletonize_mask
from geodefect.graph.vectorize import (
    VectorizeParams,
    _check_orientation,
    finish_network,
    junction_span_px,
    pixel_size_m,
    prepare_mask,
)

__all__ = ["DEFAULT_BLOCK_PX", "BlockGrid", "vectorize_mask_tiled", "vectorize_probability_tiled"]

#: default core block side (pixels): rasters up to this size are vectorised whole
DEFAULT_BLOCK_PX = 4096
#: the smallest halo (pixels)
MIN_HALO_PX = 64


@dataclass(frozen=True)
class BlockGrid:
    """Core blocks of ``block_px`` over an (H, W) raster, read with a halo.

    Attributes:
        shape: (H, W) of the raster.
        block_px: side of a core block.
        halo_px: pixels read beyond the core on each side (where the raster goes on).
        align_px: the top-left corner of a read window is moved back to a multiple of this.
    """

    shape: tuple[int, int]
    block_px: int
    halo_px: int
    align_px: int = 1

    @property
    def grid_rc(self) -> tuple[int, int]:
        return (-(-self.shape[0] // self.block_px), -(-self.shape[1] // self.block_px))

    def blocks(self) -> list[tuple[int, int]]:
        return [(i, j) for i in range(self.grid_rc[0]) for j in range(self.grid_rc[1])]

    def read_window(self, i: int, j: int) -> tuple[slice, slice]:
        """Rows and columns read for block (i, j): its core grown by the halo, clipped to the raster."""
        out = []
        for k, n in ((i, self.shape[0]), (j, self.shape[1])):
            lo = max(((k * self.block_px - self.halo_px) // self.align_px) * self.align_px, 0)
            out.append(slice(lo, min((k + 1) * self.block_px + self.halo_px, n)))
        return out[0], out[1]


def vectorize_probability_tiled(
    prob, transform, *, orientation=None, bin_deg: float | None = None,
    params: VectorizeParams = VectorizeParams(),  # noqa: B008 (frozen)
    crs=None, block_px: int = DEFAULT_BLOCK_PX, halo_px: int | None = None,
) -> RoadNetwork:
    """Road network of a probability raster, block by block (as ``vectorize_road_probability``).

    Args:
        prob: (H, W) float probabilities, NaN = nodata: an array or (best) a memory-mapped
            ``.npy``, which is then read one window at a time and never mapped whole.
        transform, orientation, bin_deg, params, crs: as
            :func:`geodefect.graph.vectorize.vectorize_road_probability`.
        block_px: side of the core blocks (>= 64).
        halo_px: pixels read round each core (default :func:`default_halo_px`).

    Returns:
        :class:`RoadNetwork`; ``stats["vector_blocks"]`` is the number of blocks.
    """
    source = _source(prob, "prob")
    scale_rc = pixel_size_m(transform, crs, source.shape)
    sigma_px = params.smooth_sigma_m / float(np.mean(scale_rc))
    masks = MaskWindows(source, partial(prepare_mask, params=params, scale_rc=scale_rc), threshold=params.threshold,
                        smooth_sigma_px=sigma_px, prepare_margin_px=prepare_margin_px(params, scale_rc))
    prob_tiles = BlockedRaster(source.shape, source.dtype, source.read)
    return _vectorize_blocks(masks, prob_tiles, transform, crs=crs, orientation=orientation, bin_deg=bin_deg,
                             params=params, scale_rc=scale_rc, block_px=block_px, halo_px=halo_px)


def vectorize_mask_tiled(
    mask, transform, *, orientation=None, bin_deg: float | None = None,
    params: VectorizeParams = VectorizeParams(),  # noqa: B008 (frozen)
    crs=None, prob=None, block_px: int = DEFAULT_BLOCK_PX, halo_px: int | None = None,
) -> RoadNetwork:
    """Road network of a boolean mask, block by block (as ``vectorize_road_mask``).

    Args:
        mask: (H, W) bool or 0/1 array-like (a memory map is read one window at a time).
        prob: optional (H, W) probabilities (NaN = nodata, ``mean_prob``), same reading.
        others: as :func:`vectorize_probability_tiled`.
    """
    source = _source(mask, "mask")
    scale_rc = pixel_size_m(transform, crs, source.shape)
    masks = MaskWindows(source, partial(prepare_mask, params=params, scale_rc=scale_rc), threshold=None,
                        prepare_margin_px=prepare_margin_px(params, scale_rc))
    prob_tiles = None
    if prob is not None:
        prob_source = _source(prob, "prob")
        if prob_source.shape != source.shape:
            raise InputError(f"`prob` must have the mask's shape {source.shape}, got {prob_source.shape}")
        prob_tiles = BlockedRaster(prob_source.shape, prob_source.dtype, prob_source.read)
    return _vectorize_blocks(masks, prob_tiles, transform, crs=crs, orientation=orientation, bin_deg=bin_deg,
                             params=params, scale_rc=scale_rc, block_px=block_px, halo_px=halo_px)


def default_halo_px(params: VectorizeParams, scale_rc) -> int:
    """Twice the largest of: the junction cell (``max_junction_span_m``), the border padding, 32 px.

    The halo must exceed what decides a core pixel's skeleton and node: the thinning's reach
    (half the widest road or blob) and the span of a junction cluster.
    """
    mean_px = (scale_rc[0] + scale_rc[1]) / 2
    pad_px = int(math.ceil(params.border_pad_m / mean_px))
    return max(2 * junction_span_px(params, scale_rc), 2 * pad_px, MIN_HALO_PX)


def prepare_margin_px(params: VectorizeParams, scale_rc) -> int:
    """Pixels beyond a window that ``prepare_mask`` looks at (hole extent, small-object size)."""
    margin = 0
    if params.fill_hole_area_m2 > 0:
        margin = int(math.ceil(2 * math.sqrt(params.fill_hole_area_m2 / math.pi) / min(scale_rc))) + 2
    if params.min_object_area_m2 > 0:  # a blob reaching this far is at least this big: exact up to the cap
        area_px = params.min_object_area_m2 / (scale_rc[0] * scale_rc[1])
        margin = max(margin, min(int(math.ceil(area_px)), MAX_OBJECT_MARGIN_PX))
    return margin


def _source(array, name: str) -> WindowSource:
    if not (hasattr(array, "shape") and hasattr(array, "dtype")):
        array = np.asarray(array)
    if len(array.shape) != 2:
        raise InputError(f"`{name}` must be a (H, W) array, got shape {tuple(array.shape)}")
    return WindowSource(array)


def _vectorize_blocks(masks: MaskWindows, prob_tiles, transform, *, crs, orientation, bin_deg, params,
                      scale_rc, block_px: int, halo_px: int | None) -> RoadNetwork:
    if int(block_px) < MIN_HALO_PX:
        raise InputError(f"`block_px` must be at least {MIN_HALO_PX} pixels, got {block_px!r}")
    shape = masks.shape
    bins = _check_orientation(orientation, bin_deg, shape)
    span_px = junction_span_px(params, scale_rc)
    halo = int(halo_px) if halo_px is not None else default_halo_px(params, scale_rc)
    grid = BlockGrid(shape, int(block_px), halo, align_px=span_px)
    release_free_memory()  # what inference freed (its heap is never trimmed under tune_malloc) goes back first
    pad_px = int(math.ceil(params.border_pad_m / ((scale_rc[0] + scale_rc[1]) / 2)))
    with large_blocks_unmapped():  # large temporaries go back to the system, not stay pinned under the graph
        pieces = [p for i, j in _progress(grid) for p in _block_pieces(grid, masks, i, j, pad_px=pad_px, span_px=span_px)]
        g = join_pieces(pieces, scale_rc=scale_rc)
        del pieces
        merge_degree_two(g)  # as the whole path's first merge (ends, degree 1, are untouched): the seam points go
        release_free_memory()
        mask_tiles = BlockedRaster(shape, bool, masks.read)
        network = finish_network(g, mask_tiles, prob_tiles, transform, crs=crs, bins=bins, bin_deg=bin_deg, params=params)
    network.stats.update(vector_blocks=len(grid.blocks()), vector_block_px=grid.block_px, vector_halo_px=grid.halo_px)
    return network


def _block_pieces(grid: BlockGrid, masks: MaskWindows, i: int, j: int, *, pad_px: int, span_px: int):
    """Thin block (i, j) with its halo and keep the pieces of its graph that its core owns."""
    rows, cols = grid.read_window(i, j)
    mask = masks.read(rows, cols)
    if not mask.any():
        return []
    skel = skeletonize_mask(mask, border_pad_px=pad_px)
    del mask
    pg = skeleton_to_graph(skel, max_cluster_span_px=span_px)
    del skel
    pieces = owned_pieces(pg, (rows.start, cols.start), block=i * grid.grid_rc[1] + j,
                          block_px=grid.block_px, grid_rc=grid.grid_rc)
    del pg
    release_free_memory()  # the block's small arrays too: the heap would keep them under the pieces
    return pieces


def _progress(grid: BlockGrid):
    from geodefect.progress import progress

    return progress(grid.blocks(), desc="vectorise", unit="block")
