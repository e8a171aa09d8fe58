"""Model inference on top of the sliding-window engine.

* :mod:`geodefect.inference.predictor` — ``TorchPredictor``: a torch model + normalisation as
  the engine's predictor (batches in, named probabilities out; CUDA fp16 or CPU fp32).
* :mod:`geodefect.inference.geo` — GeoTIFF + AOI: input checks, AOI windows, block-wise COG
  outputs.
* :mod:`geodefect.inference.road_outputs` — road probability / mask / orientation rasters and
  the vectoriser's inputs.

Submodules are imported on use (torch and rasterio are heavy).
"""
