"""How fast can the road LinkNet fit ONE batch of real chips? (the learning-rate diagnosis, issue 14)

    PYTHONPATH=$PWD .venv/bin/python benchmarks/diag_road_lr.py CHIPS_DIR [--lr 0.001] [--steps 40]
        [--encoder tu-efficientnet_lite0] [--encoder-weights imagenet]

Takes the first 8 training chips with > 500 road pixels, builds ``road_linknet`` and runs AdamW
steps with the training loss (``RoadLoss``: BCE + soft IoU, orientation weight 1) on that batch
alone, printing every 5 steps the loss parts, the pixel IoU at 0.5, the mean road probability on
road and background pixels, and the mean / zero share of the decoder's last (post-ReLU) features.
A model that cannot overfit one batch in 40 steps will not learn the data set in a CPU budget.
"""

from __future__ import annotations

import argparse

import torch


def main() -> None:
    from geodefect.datasets.roads import RoadChipDataset
    from geodefect.losses.roads import RoadLoss
    from geodefect.models.registry import build_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chips_dir")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--encoder", default="tu-efficientnet_lite0")
    ap.add_argument("--encoder-weights", default="imagenet")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    ds = RoadChipDataset(args.chips_dir, split="train")
    idx = [i for i in range(len(ds)) if ds[i]["road"].sum() > 500][:8]
    batch = {k: torch.stack([torch.as_tensor(ds[i][k]) for i in idx]) for k in ("image", "road", "orientation")}
    weights = None if args.encoder_weights == "none" else args.encoder_weights
    model = build_model("road_linknet", encoder=args.encoder, encoder_weights=weights, n_classes=19).train()
    feats = {}
    model.decoder.register_forward_hook(lambda mod, inp, out: feats.__setitem__("decoder", out))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    loss_fn = RoadLoss(road_loss="bce_soft_iou", orientation_weight=1.0)
    truth = batch["road"] > 0.5
    for step in range(args.steps):
        out = model(batch["image"])
        loss, parts = loss_fn(out, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 5 == 0 or step == args.steps - 1:
            p = torch.sigmoid(out.road.detach())
            iou = float(((p > 0.5) & truth).sum() / ((p > 0.5) | truth).sum().clamp(min=1))
            f = feats["decoder"]
            print(f"step {step:3d} loss {loss.item():.3f} road {parts['road'].item():.3f} "
                  f"orientation {parts['orientation'].item():.3f} IoU {iou:.3f} p(road) {p[truth].mean():.3f} "
                  f"p(background) {p[~truth].mean():.3f} features mean {f.mean():.3f} zero {(f == 0).float().mean():.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
