"""Road workflows: chip -> train -> infer -> evaluate. Re-exported from one module per step."""

from __future__ import annotations


def chip(*args, **kwargs):
    from geodefect.chips.geo import chip as _chip

    return _chip(*args, **kwargs)


def train(*args, **kwargs):
    from geodefect.workflows.road_train import train as _train

    return _train(*args, **kwargs)


def infer(*args, **kwargs):
    from geodefect.workflows.road_infer import infer as _infer

    return _infer(*args, **kwargs)


def evaluate(*args, **kwargs):
    from geodefect.workflows.road_evaluate import evaluate as _evaluate

    return _evaluate(*args, **kwargs)
