"""The shared training loop: outputs, exact resume after a kill, NaN loss, early stopping."""

from __future__ import annotations

import csv

import pytest
import torch

from geodefect.errors import TrainingError
from geodefect.losses.roads import RoadLoss
from geodefect.metrics.segmentation import RoadMetrics
from geodefect.models.checkpoint import load_package
from geodefect.models.outputs import RoadOutput
from geodefect.training.loop import LoopConfig, TaskAdapter, fit
from geodefect.training.state import EpochSampler, read_checkpoint

N_CLASSES = 5

@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread, and two threads crawl when other jobs share the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)



class TinyRoadNet(torch.nn.Module):
    """A 2-layer conv net with RoadOutput and dropout (so RNG state matters on resume)."""

    def __init__(self, n_classes: int = N_CLASSES) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                                        torch.nn.ReLU(), torch.nn.Dropout2d(0.2))
        self.road = torch.nn.Conv2d(8, 1, 1)
        self.orientation = torch.nn.Conv2d(8, n_classes, 1)

    def forward(self, x):
        f = self.body(x)
        return RoadOutput(self.road(f), self.orientation(f))


class ToyRoads(torch.utils.data.Dataset):
    """Samples whose road = bright pixels; augmentation uses the global torch RNG (flip)."""

    def __init__(self, n: int, size: int = 16, seed: int = 0, augment: bool = True) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, size, size, generator=g)
        self.augment = augment

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        img = self.images[i]
        road = (img.mean(0, keepdim=True) > 0.5).float()
        orient = (road[0] * (1 + (img[0] > 0.5).long())).long()
        if self.augment and torch.rand(()) < 0.5:
            img, road, orient = img.flip(-1), road.flip(-1), orient.flip(-1)
        return {"image": img, "road": road, "orientation": orient}


class ToyAdapter(TaskAdapter):
    monitor = "miou"

    def __init__(self) -> None:
        self.loss = RoadLoss(road_loss="bce")

    def compute_loss(self, output, batch):
        return self.loss(output, batch)

    def new_metrics(self):
        return RoadMetrics(n_classes=N_CLASSES)


RECIPE = {"task": "roads", "model": {"name": "tiny", "kwargs": {}}}


def _run(tmp_path, name, *, resume=False, callbacks=(), **cfg):
    torch.manual_seed(0)
    model = TinyRoadNet()
    run_dir = tmp_path / name
    run_dir.mkdir(exist_ok=True)
    config = LoopConfig(**{"epochs": 2, "batch_size": 4, "lr": 1e-2, "device": "cpu", **cfg})
    result = fit(model, ToyAdapter(), ToyRoads(12), ToyRoads(4, seed=1, augment=False), run_dir,
                 config=config, recipe=RECIPE, resume=resume, callbacks=callbacks)
    return model, result, run_dir


def test_fit_writes_reports_and_checkpoints(tmp_path):
    model, result, run_dir = _run(tmp_path, "run")
    assert [r["epoch"] for r in result.history] == [1, 2]
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert len(rows) == 2
    for key in ("train_loss", "val_loss", "miou", "road_iou", "dice", "pixel_accuracy", "orientation_accuracy"):
        assert key in rows[0]
        assert 0 <= float(rows[-1][key]) or key.endswith("loss")
    assert (run_dir / "curves.png").stat().st_size > 0
    for name in ("best.pt", "last.pt"):
        obj = read_checkpoint(run_dir / "last.pt") if name == "last.pt" else None
        assert obj is None or obj["training"]["epoch"] == 2
    assert result.best_epoch in (1, 2)
    assert result.best_metrics["miou"] == max(r["miou"] for r in result.history)


class _Kill(Exception):
    pass


def _kill_after(k):
    def cb(info):
        if info.global_step == k:
            raise _Kill

    return cb


def test_resume_after_kill_gives_identical_weights(tmp_path):
    full, full_result, _ = _run(tmp_path, "full", checkpoint_every_steps=1)
    with pytest.raises(_Kill):  # 3 steps/epoch: killed in the middle of epoch 2
        _run(tmp_path, "killed", checkpoint_every_steps=1, callbacks=[_kill_after(4)])
    state = read_checkpoint(tmp_path / "killed" / "last.pt")["training"]
    assert (state["epoch"], state["step"]) == (1, 1)
    resumed, resumed_result, _ = _run(tmp_path, "killed", resume=True, checkpoint_every_steps=1)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert [r["val_loss"] for r in full_result.history] == [r["val_loss"] for r in resumed_result.history]
    assert [r["train_loss"] for r in full_result.history] == [r["train_loss"] for r in resumed_result.history]


def test_nan_loss_is_a_training_error(tmp_path):
    class NanAdapter(ToyAdapter):
        def compute_loss(self, output, batch):
            total, parts = super().compute_loss(output, batch)
            return total * float("nan"), parts

    torch.manual_seed(0)
    (tmp_path / "r").mkdir()
    with pytest.raises(TrainingError, match="lower the learning rate"):
        fit(TinyRoadNet(), NanAdapter(), ToyRoads(8), ToyRoads(4), tmp_path / "r",
            config=LoopConfig(epochs=1, batch_size=4, device="cpu"), recipe=RECIPE)


def test_best_pt_is_a_loadable_package_with_metrics(tmp_path, monkeypatch):
    from geodefect.models import registry

    monkeypatch.setitem(registry._REGISTRY, "tiny", lambda: TinyRoadNet())
    model, result, run_dir = _run(tmp_path, "run", epochs=1)
    loaded, recipe = load_package(run_dir / "best.pt")
    assert recipe["metrics"]["epoch"] == 1
    assert recipe["training"]["lr_used"] == 1e-2
    x = torch.rand(1, 3, 16, 16)
    model.eval()
    assert torch.allclose(loaded(x).road, model(x).road, atol=1e-6)


def test_early_stopping_stops_when_patience_runs_out(tmp_path):
    _, result, _ = _run(tmp_path, "run", epochs=6, lr=1e-9, patience=1, lr_schedule="constant")
    assert result.stopped_early
    assert len(result.history) < 6


def test_lr_auto_picks_a_rate_and_restores_weights(tmp_path):
    _, result, run_dir = _run(tmp_path, "run", epochs=1, lr="auto", lr_find_steps=10)
    assert 1e-8 < result.lr < 1.0
    assert (run_dir / "lr_find.png").exists()


def test_epoch_sampler_order_is_a_function_of_seed_and_epoch():
    a = list(EpochSampler(10, seed=3, epoch=1, shuffle=True))
    assert a == list(EpochSampler(10, seed=3, epoch=1, shuffle=True))
    assert a != list(EpochSampler(10, seed=3, epoch=2, shuffle=True))
    assert list(EpochSampler(10, seed=3, epoch=1, shuffle=True, skip=4)) == a[4:]
    shards = [list(EpochSampler(10, seed=3, epoch=1, shuffle=True, rank=r, world_size=3)) for r in range(3)]
    assert all(len(s) == 3 for s in shards)
    assert len({i for s in shards for i, _ in s}) == 9


def test_pick_lr_on_a_synthetic_sweep():
    from geodefect.training.lr_find import pick_lr

    lrs = [10 ** (-6 + i * 0.25) for i in range(25)]  # 1e-6 .. 1
    # flat, then falling (fastest at index 10), minimum at index 16 (lr 1e-2), then diverging
    losses = [2.0] * 8 + [1.9, 1.6, 1.0, 0.9, 0.7, 0.6, 0.55, 0.52, 0.5] + [0.6, 0.9, 1.5, 2.5, 4.0, 6.0, 9.0, 12.0]
    found = pick_lr(lrs, losses)
    assert found.lr_at_min == pytest.approx(1e-2, rel=0.01)
    assert found.lr <= found.lr_at_min / 10 and found.lr <= found.lr_steepest
    with pytest.raises(TrainingError, match="--lr"):
        pick_lr(lrs[:2], losses[:2])


def test_sigterm_saves_last_pt_after_the_step_and_stops(tmp_path):
    import os
    import signal

    def terminate(info):  # the signal arrives during step 1's callbacks: handled after step 2
        if info.global_step == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(KeyboardInterrupt, match="--resume"):
        _run(tmp_path, "run", callbacks=[terminate])
    state = read_checkpoint(tmp_path / "run" / "last.pt")["training"]
    assert (state["epoch"], state["step"], state["global_step"]) == (0, 2, 2)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    resumed, _, _ = _run(tmp_path, "run", resume=True)
    full, _, _ = _run(tmp_path, "full")
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
