"""Options of road chip export (``geodefect chip`` on rasters + centerlines)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RoadChipConfig:
    """Options of ``geodefect chip`` for roads (units in the names).

    ``buffer_m`` = 2.0: road *half*-width in metres, i.e. 4 m wide masks, the width
    SpaceNet's own road-mask tools (CosmiQ apls ``create_speed_masks``) burn around
    centerlines; most lanes are ~3.5 m, so a 4 m band stays on the carriageway of small
    roads and covers the centre of wide ones. ``keep_empty`` = 0.1 keeps one road-free
    chip in ten (negatives without flooding the set). ``split_block_px`` defaults to
    4 × ``stride_px`` (4×4 chips per block). ``width_field``: a centerline attribute with
    the road's full width in units of ``width_unit_m`` metres (1: metres; 3.0 with SpaceNet's
    ``lane_number``: a two-lane road is 6 m wide); half of it is the feature's buffer (missing
    or non-positive values fall back to ``buffer_m``). ``workers`` threads export windows in
    parallel (GDAL reads, label burning and file writes release the GIL); 1 = serial.
    ``val_sources``: validate on WHOLE source rasters instead of spatial blocks: every chip of
    a raster whose file name contains one of these strings (e.g. ``img1454``) is val, every
    other chip train (no tile on both sides); ``val_fraction`` is then unused.

    Attributes:
        size_px: chip side in pixels.
        stride_px: step between chips in pixels, 1..size.
        label: road mask: buffer of buffer_m, or thresholded Gaussian (Batra et al. 2019).
        buffer_m: road half-width in metres around each centerline (2.0: SpaceNet's 4 m masks).
        width_field: centerline attribute with the road width: buffer = width x width_unit_m / 2 per road.
        width_unit_m: metres per unit of width_field (1 = metres; e.g. 3.0 for a lane count).
        sigma_px: Gaussian label sigma in pixels.
        threshold: Gaussian label threshold.
        orient_bin_deg: orientation bin width in degrees; 360/bin + 1 classes, 0 = background.
        orient_width_px: width in pixels of the orientation band along centerlines.
        cell_size_m: resample imagery to this pixel size in metres (bilinear; area average when
            downsampling).
        keep_empty: share of road-free chips kept, 0..1, drawn with --seed.
        max_nodata: skip chips with a larger share of nodata.
        bands: 1-based bands to export, e.g. 1,2,3 (default: all but alpha).
        stretch: percentile (2-98%) stretch to 8 bit (default: only for non-uint8 rasters).
        val_fraction: share of spatial blocks (or source images) for validation.
        split_block_px: side of the spatial blocks drawn for train/val (default: 4 x stride).
        seed: seed of the split and the road-free draw.
        workers: threads exporting chips in parallel.
        scheduler: local (this process), processes:N (a Dask LocalCluster of N workers) or a Dask
            scheduler address tcp://HOST:PORT; one work unit per source raster (or per block, see block_px).
        block_px: with a scheduler other than local, the windows of a raster larger than this are
            cut into work units by blocks of this many pixels (the chips are the same); 0 = one
            unit per raster.
        val_sources: validate on whole rasters: comma-separated parts of their file names (e.g.
            img1454,img38); all their chips are val, the rest train (default: spatial blocks).
    """

    size_px: int = 512
    stride_px: int | None = None
    label: str = "buffer"
    buffer_m: float = 2.0
    width_field: str | None = None
    width_unit_m: float = 1.0
    sigma_px: float = 15.0
    threshold: float = 0.76
    orient_bin_deg: int = 20
    orient_width_px: float = 8.0
    cell_size_m: float | None = None
    keep_empty: float = 0.1
    max_nodata: float = 0.25
    bands: str | list[int] | None = None
    stretch: bool | None = None
    val_fraction: float = 0.2
    split_block_px: int | None = None
    seed: int = 0
    workers: int = 2
    scheduler: str = "local"
    block_px: int = 4096
    val_sources: list[str] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.val_sources, str):  # the command line gives "img1454,img38"
            object.__setattr__(self, "val_sources", [v.strip() for v in self.val_sources.split(",") if v.strip()])
        if not self.width_unit_m > 0:
            from geodefect.errors import ConfigError

            raise ConfigError(f"`width_unit_m` must be > 0 (metres per unit of width_field), got {self.width_unit_m!r}")
        if not isinstance(self.block_px, int) or not (self.block_px == 0 or self.block_px >= 64):
            from geodefect.errors import ConfigError

            raise ConfigError(f"`block_px` must be 0 (one work unit per raster) or at least 64 pixels, got {self.block_px!r}")
