"""Benchmark: the real training loop against a bare forward+backward loop, same run.

The real loop is :func:`geodefect.training.fit` on chips written by ``geodefect chip`` from a
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
    from geodefect.workflows.roads import chip

    scene = make_road_scene(root / "scene", size_px=scene_px, seed=0)
    chip([scene.image], root / "chips", centerlines=scene.centerlines,
         overrides={"size_px": size_px, "stride_px": size_px, "keep_empty": 1.0})
    return root / "chips"


class StepClock:
    """Callback: wall time from the end of step 1 to the end of the last step, per epoch."""

    def __init__(self) -> None:
        self.marks: dict[int, list[float]] = {}

    def __call__(self, info) -> None:
        self.marks.setdefault(info.epoch, []).append(time.perf_counter())

    def rate(self, epoch: int, batch_size: int) -> float:
        m = self.marks[epoch]
        return (len(m) - 1) * batch_size / (m[-1] - m[0])


def bare_rate(model, adapter, batches, device) -> float:
    """Samples/s of forward + loss + backward + AdamW over in-memory batches (first one is warm-up)."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    marks = []
    for batch in batches:
        loss, _ = adapter.compute_loss(adapter.forward(model, batch), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        marks.append(time.perf_counter())
    return (len(marks) - 1) * len(batches[0]["image"]) / (marks[-1] - marks[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--size-px", type=int, default=128)
    parser.add_argument("--scene-px", type=int, default=768)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12, help="steps per epoch")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from geodefect.training import fit
    from geodefect.training_state import make_loader, move_batch, resolve_device
    from geodefect.workflows.road_train import (
        RoadTaskAdapter,
        RoadTrainConfig,
        loop_config,
        make_datasets,
        make_recipe,
        model_spec,
    )

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        chips = make_chips(root, scene_px=args.scene_px, size_px=args.size_px)
        from geodefect.datasets.roads import read_road_meta

        meta = read_road_meta(chips)
        cfg = RoadTrainConfig(encoder=args.encoder, epochs=2, batch_size=args.batch_size, steps_per_epoch=args.steps,
                              device="cpu", threads=args.threads, lr=1e-4, lr_schedule="constant")
        train_ds, val_ds = make_datasets(chips, cfg, meta)
        spec = model_spec(cfg, meta)
        adapter = RoadTaskAdapter(cfg, meta)
        from geodefect.models.registry import build_model

        device = resolve_device("cpu")
        # the same batches the loop sees in epoch 1, materialised in memory
        loader = make_loader(train_ds, loop_config(cfg), _Ctx(device), epoch=0, skip_batches=0, train=True)
        batches = [move_batch(b, device, "image") for _, b in zip(range(args.steps), loader, strict=False)]
        torch.manual_seed(0)
        bare_model = build_model(spec["name"], **spec["kwargs"]).to(memory_format=torch.channels_last)
        bare_before = bare_rate(bare_model, adapter, batches, device)

        clock = StepClock()
        torch.manual_seed(0)
        model = build_model(spec["name"], **spec["kwargs"])
        run_dir = root / "run"
        run_dir.mkdir()
        t0 = time.perf_counter()
        fit(model, adapter, _fresh(chips, cfg, meta, "train"), val_ds, run_dir, config=loop_config(cfg),
            recipe=make_recipe(meta, spec, chips, len(train_ds), len(val_ds)), callbacks=[clock])
        total = time.perf_counter() - t0
        bare_after = bare_rate(bare_model, adapter, batches, device)

    bare = (bare_before + bare_after) / 2
    steps_s = sum(m[-1] - m[0] for m in clock.marks.values())
    print(f"encoder {args.encoder}, chips {args.size_px} px, batch {args.batch_size}, {args.steps} steps/epoch, "
          f"{args.threads} thread(s), {len(train_ds)} train / {len(val_ds)} val chips")
    print(f"bare forward+backward (in-memory batches): {bare:.2f} samples/s "
          f"(before {bare_before:.2f}, after {bare_after:.2f})")
    for epoch in sorted(clock.marks):
        rate = clock.rate(epoch, args.batch_size)
        label = "reads chip files" if epoch == 1 else "in-memory chip cache"
        print(f"training loop epoch {epoch} ({label}): {rate:.2f} samples/s -> overhead {bare / rate - 1:+.1%} "
              f"(limit +10%)")
    print(f"per-run time outside the timed steps (first steps, validation + metrics, plots, checkpoints): "
          f"{total - steps_s:.1f} s of {total:.1f} s")


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
