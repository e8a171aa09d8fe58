#!/usr/bin/env bash
# Score a road model on the SpaceNet-3 validation tiles (examples/spacenet3_chips.yaml: val_sources)
# the way a user would: `geodefect infer` on PAN + --pan-sharpen MUL, then `geodefect evaluate` of
# road_mask.tif (pixel IoU/F1, relaxed F1) and of roads.gpkg (APLS) against the tile's centerlines.
#   benchmarks/eval_spacenet3_val.sh MODEL OUT_DIR    (MODEL: a package or spacenet3-roads)
# Writes OUT_DIR/<tile>/{mask,graph}.json; summarise with benchmarks/summarise_spacenet3_val.py OUT_DIR.
set -euo pipefail
MODEL=$1; OUT=$2
SHARED=${GEODEFECT_SHARED:-$(cd "$(dirname "$0")/.." && pwd)/../shared/data}
S3=$SHARED/spacenet3_samples
GD=${GEODEFECT:-geodefect}
mkdir -p "$OUT"
for tile in AOI_2_Vegas:img1454 AOI_2_Vegas:img767 AOI_3_Paris:img432 AOI_4_Shanghai:img1887; do
  aoi=${tile%%:*}; img=${tile##*:}; d=$S3/${aoi}_Roads_Sample; name=${aoi}_${img}
  truth=$d/geojson/spacenetroads_${aoi}_${img}.geojson
  $GD infer "$MODEL" "$d/PAN/PAN_${aoi}_${img}.tif" --pan-sharpen "$d/MUL/MUL_${aoi}_${img}.tif" \
      -o "$OUT/$name" --overwrite -q
  $GD evaluate --pred "$OUT/$name/road_mask.tif" --truth "$truth" --json "$OUT/$name/mask.json" > /dev/null
  $GD evaluate --pred "$OUT/$name/roads.gpkg" --truth "$truth" --json "$OUT/$name/graph.json" > /dev/null
done
