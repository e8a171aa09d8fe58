"""Datasets: map-style, ``ds[i] -> dict[str, Tensor]`` samples for :func:`geodefect.training.loop.fit`.

roads.py: road chips written by ``geodefect chip`` (image, road mask, orientation bins);
transforms.py: paired geometric transforms that remap orientation bins, colour jitter;
inspection.py / damage.py: inspection photos and road-damage patches.
"""
