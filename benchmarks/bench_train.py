"""Benchmark: the real training loop against a bare forward+backward loop, same run.

The real loop is :func:`geodefect.training.loop.fit` on chips written by ``geodefect chip`` from a
synthetic scene: reading chip GeoTIFFs (first epoch; later epochs hit the in-memory cache),
augmentation (flips + orientation remap + colour jitter), normalisation, collation, per-sample
seeding, loss parts, progress bar. The limit is a bare loop over the *same* batches already
held in memory as tensors: forward, loss, backward, AdamW step - nothing else.

Reported: train samples/s of both and the pipeline overhead (target <= 10%), per epoch
(epoch 1 reads files, epoch 2 is cached), plus the per-epoch fixed costs the loop adds after
the steps (validation with metrics, metrics.csv/curves.png/samples.png, best.pt/last.pt).

    .venv/bin/python benchmarks/bench_train.py [--encoder resnet18] [--size-px 128] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def make_chips(root: Path, *, scene_px: int, size_px: int) -> Path:
    from geodefect.testing.scenes import make_road_scene
    from geodefect.workflows.chip import chip

    scene = make_road_scene(root / "scene", size_px=scene_px, seed=0)
    chip([scene.image], root / "chips", centerlines=scene.centerlines,
         overrides={"size_px": size_px, "stride_px": size_px, "keep_empty": 1.0})
    return root / "chips"


def now(clock: str) -> float:
    """``wall`` (perf_counter) or ``cpu`` (this process's CPU time: robust to other jobs on the CPU)."""
    return time.perf_counter() if clock == "wall" else time.process_time()


class StepClock:
    """Callback: time from the end of step 1 to the end of the last step, per epoch, both clocks."""

    def __init__(self) -> None:
        self.marks: dict[int, list[tuple[float, float]]] = {}

    def __call__(self, info) -> None:
        self.marks.setdefault(info.epoch, []).append((now("wall"), now("cpu")))

    def rate(self, epoch: int, batch_size: int, clock: str) -> float:
        i = 0 if clock == "wall" else 1
        m = self.marks[epoch]
        return (len(m) - 1) * batch_size / (m[-1][i] - m[0][i])


def bare_rate(model, adapter, batches, device) -> dict[str, float]:
    """Samples/s (wall and CPU clocks) of forward + loss + backward + AdamW over in-memory batches."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    marks = []
    for batch in batches:
        loss, _ = adapter.compute_loss(adapter.forward(model, batch), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        marks.append((now("wall"), now("cpu")))
    n = (len(marks) - 1) * len(batches[0]["image"])
    return {"wall": n / (marks[-1][0] - marks[0][0]), "cpu": n / (marks[-1][1] - marks[0][1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--size-px", type=int, default=128)
    parser.add_argument("--scene-px", type=int, default=1280)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="steps per epoch")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from geodefect.tasks import get_task
    from geodefect.tasks.roads import RoadTaskAdapter, make_recipe, model_spec
    from geodefect.training.config import resolve_train_config
    from geodefect.training.loop import fit
    from geodefect.training.state import make_loader, move_batch, resolve_device

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        chips = make_chips(root, scene_px=args.scene_px, size_px=args.size_px)
        from geodefect.datasets.roads import read_road_meta

        meta = read_road_meta(chips)
        task = get_task("roads")
        run_cfg = resolve_train_config(task.Options, task.loop_defaults, None, {
            "encoder": args.encoder, "epochs": 2, "batch_size": args.batch_size, "steps_per_epoch": args.steps,
            "device": "cpu", "threads": args.threads, "lr": 1e-4, "lr_schedule": "constant"})
        cfg, loop_cfg = run_cfg.task, run_cfg.loop
        data = task.prepare(chips, run_cfg, meta)
        train_ds, val_ds = data.train, data.val
        spec = model_spec(cfg, meta)
        adapter = RoadTaskAdapter(cfg, meta)
        from geodefect.models.registry import build_model

        device = resolve_device("cpu")
        # the same batches the loop sees in epoch 1, materialised in memory
        loader = make_loader(train_ds, loop_cfg, _Ctx(device), epoch=0, skip_batches=0, train=True)
        batches = [move_batch(b, device, "image") for _, b in zip(range(args.steps), loader, strict=False)]
        torch.manual_seed(0)
        bare_model = build_model(spec["name"], **spec["kwargs"]).to(memory_format=torch.channels_last)
        bare_before = bare_rate(bare_model, adapter, batches, device)

        data_costs = measure_data_pipeline(chips, cfg, loop_cfg, meta, args.steps, _Ctx(device))
        clock = StepClock()
        torch.manual_seed(0)
        model = build_model(spec["name"], **spec["kwargs"])
        run_dir = root / "run"
        run_dir.mkdir()
        t0 = time.perf_counter()
        fit(model, adapter, _fresh(chips, cfg, meta, "train"), val_ds, run_dir, config=loop_cfg,
            recipe=make_recipe(task.name, meta, spec, chips, len(train_ds), len(val_ds)), callbacks=[clock])
        total = time.perf_counter() - t0
        bare_after = bare_rate(bare_model, adapter, batches, device)

    steps_s = sum(m[-1][0] - m[0][0] for m in clock.marks.values())
    print(f"encoder {args.encoder}, chips {args.size_px} px, batch {args.batch_size}, {args.steps} steps/epoch, "
          f"{args.threads} thread(s), {len(train_ds)} train / {len(val_ds)} val chips")
    for name in ("cpu", "wall"):
        bare = (bare_before[name] + bare_after[name]) / 2
        print(f"[{name} clock] bare forward+backward (in-memory batches): {bare:.2f} samples/s "
              f"(before {bare_before[name]:.2f}, after {bare_after[name]:.2f})")
        for epoch in sorted(clock.marks):
            rate = clock.rate(epoch, args.batch_size, name)
            label = "reads chip files" if epoch == 1 else "in-memory chip cache"
            print(f"[{name} clock] training loop epoch {epoch} ({label}): {rate:.2f} samples/s -> "
                  f"overhead {bare / rate - 1:+.1%} (limit +10%)")
    for label, cost in data_costs.items():
        bare_step = args.batch_size / ((bare_before["cpu"] + bare_after["cpu"]) / 2)
        print(f"[cpu clock] data pipeline alone ({label}): {cost * 1000:.1f} ms/batch = "
              f"{cost / bare_step:.1%} of a bare step ({bare_step * 1000:.0f} ms)")
    print(f"per-run wall time outside the timed steps (first steps, validation + metrics, plots, checkpoints): "
          f"{total - steps_s:.1f} s of {total:.1f} s")


def measure_data_pipeline(chips, cfg, loop_cfg, meta, steps: int, ctx) -> dict[str, float]:
    """CPU seconds per batch of the loader alone (read + augment + normalise + collate), cold and cached."""
    from geodefect.training.state import make_loader

    ds = _fresh(chips, cfg, meta, "train")
    out = {}
    for label in ("reads chip files", "in-memory chip cache"):
        loader = make_loader(ds, loop_cfg, ctx, epoch=0, skip_batches=0, train=True)
        t = time.process_time()
        n = sum(1 for _, _b in zip(range(steps), loader, strict=False))
        out[label] = (time.process_time() - t) / n
    return out


class _Ctx:
    def __init__(self, device) -> None:
        self.device, self.rank, self.world_size = device, 0, 1


def _fresh(chips, cfg, meta, split):
    """A new training dataset (empty cache), so epoch 1 of the loop really reads the files."""
    from geodefect.datasets.roads import RoadChipDataset
    from geodefect.datasets.transforms import RoadAugment

    augment = RoadAugment(bin_deg=int(meta["orientation"]["bin_deg"]), geometry=cfg.augment_geometry,
                          brightness=cfg.color_jitter, contrast=cfg.color_jitter)
    return RoadChipDataset(chips, split=split, augment=augment, cache_mb=cfg.cache_mb)


if __name__ == "__main__":
    main()
