"""Benchmark: one training step of each stage-1 / patch classifier option, as a ratio to the paper's model.

A step = forward, cross-entropy, backward, AdamW step on a random batch (``--batch-size`` x 3 x
``--size-px``²), one thread. The models are built as ``geodefect train`` builds them
(``crack_densenet169`` with its variants, ``classifier_<backbone>``); weights do not change the
cost, so none are loaded. Reported per model: CPU seconds per step (this process's CPU time: robust
to other jobs on a shared machine) and the ratio to the first model (the paper's).

    .venv/bin/python benchmarks/bench_classifier_step.py                       # crack_classify options
    .venv/bin/python benchmarks/bench_classifier_step.py --size-px 64 --batch-size 32 \\
        --models classifier_resnet18,classifier_efficientnet_lite0            # damage_classify options
"""

from __future__ import annotations

import argparse
import time

CRACK = "densenet169,densenet121,efficientnet_lite0,efficientnet_lite1,efficientnet_lite2"


def build(name: str):
    from geodefect.models.registry import build_model

    if name.startswith("classifier_"):
        return build_model(name, n_classes=2)
    return build_model("crack_densenet169", variant=name)


def step_seconds(model, *, batch_size: int, size_px: int, steps: int) -> float:
    """Mean CPU seconds of ``steps`` training steps after one warm-up step."""
    import torch
    import torch.nn.functional as F

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(batch_size, 3, size_px, size_px)
    y = torch.randint(0, 2, (batch_size,))
    model.train()
    start = 0.0
    for i in range(steps + 1):
        if i == 1:
            start = time.process_time()
        out = model(x)
        logits = out if torch.is_tensor(out) else out.logits
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.process_time() - start) / steps


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=CRACK, help="comma-separated; the first is the reference")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--size-px", type=int, default=128)
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    ref = None
    print(f"| model | CPU s/step (batch {args.batch_size}, {args.size_px} px, 1 thread) | ratio |")
    print("|---|---|---|")
    for name in args.models.split(","):
        s = step_seconds(build(name), batch_size=args.batch_size, size_px=args.size_px, steps=args.steps)
        ref = ref or s
        print(f"| {name} | {s:.3f} | {s / ref:.2f} |", flush=True)


if __name__ == "__main__":
    main()
