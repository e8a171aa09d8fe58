"""Why the DG term does (not) help: its scale against cross-entropy, per batch, on real crops.

For random training batches (``--batch-size``, drawn like the loop's: uniformly over the pooled
crops of the training domains of one LODO fold) of a model (random init, or a ``damage_classify``
package), prints:

* batch composition: crops per (domain, class), and the meta-train difference vectors per class
  (M) against the embedding size D (M << D: Ξ_c is mostly the shrinkage target s·tr(Ξ)/D·I);
* the values of ce, ct and dg (dg ≈ 1 when a meta-test difference looks like a meta-train one);
* gradient norms on the backbone of ce, λ·ct and γ·dg, and the cosine between the ce and dg
  gradients (dg aligned with ce: nothing new; opposed: it fights the classifier).

Usage::

    python benchmarks/diag_dg_terms.py /work/runs/cls/crack_domains_64 --held-out crackforest \\
        [--model RUN/model.pt] --batches 5 --threads 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def grad_vector(model, loss):
    """All parameter gradients of ``loss`` as one flat tensor (zeros where unused)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params, strict=True)])


def diagnose(model, x, labels, domains, cfg) -> dict:
    import torch
    import torch.nn.functional as F

    from geodefect.losses.domain import dg_losses, meta_train_differences, task_loss

    model.train()
    out = model(x)
    parts = task_loss(out, labels, cfg)
    per_domain = dg_losses(out, labels, domains, cfg)
    dg = torch.stack(per_domain).mean()
    g_ce = grad_vector(model, parts["ce"])
    g_dg = grad_vector(model, cfg.dg_weight * dg)
    row = {"ce": float(parts["ce"]), "dg": float(dg), "grad_ce": float(g_ce.norm()), "grad_gamma_dg": float(g_dg.norm()),
           "cos_ce_dg": float(F.cosine_similarity(g_ce, g_dg, dim=0))}
    if "ct" in parts:
        g_ct = grad_vector(model, cfg.contrastive_weight * parts["ct"])
        row.update(ct=float(parts["ct"]), grad_lambda_ct=float(g_ct.norm()))
    z = F.normalize(out.embedding.detach(), dim=1)
    k = int(domains[0])  # one meta-test domain: M per class
    row["M_per_class"] = {int(c): int(len(meta_train_differences(z[(domains != k) & (labels == c)],
                                                                  domains[(domains != k) & (labels == c)],
                                                                  max_pairs=cfg.max_pairs)))
                          for c in torch.unique(labels).tolist()}
    row["D"] = int(z.shape[1])
    return row


def main() -> None:
    import torch

    from geodefect.datasets.damage import channel_stats
    from geodefect.losses.domain import DomainLossConfig
    from geodefect.models.checkpoint import load_package
    from geodefect.models.registry import build_model
    from geodefect.tasks.damage import DamageOptions, load_domain_crops

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("crops")
    ap.add_argument("--held-out", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--gamma", type=float, default=0.7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    crops = load_domain_crops(Path(args.crops), DamageOptions())
    keep = crops.domains != crops.domain_names.index(args.held_out)
    pool = crops.subset(keep)
    mean, std = channel_stats(pool)
    if args.model:
        model, _ = load_package(args.model)
    else:
        model = build_model("classifier_resnet18", n_classes=len(crops.classes))
    cfg = DomainLossConfig(losses=("ce", "ct", "dg"), dg_weight=args.gamma)
    rng = np.random.default_rng(args.seed)
    rows = []
    for _ in range(args.batches):
        idx = rng.choice(len(pool.labels), args.batch_size, replace=False)
        x = (pool.images[idx].astype(np.float32) - np.reshape(mean, (1, 3, 1, 1))) / np.reshape(std, (1, 3, 1, 1))
        row = diagnose(model, torch.from_numpy(x.astype(np.float32)), torch.from_numpy(pool.labels[idx]),
                       torch.from_numpy(pool.domains[idx]), cfg)
        row["per_domain_class"] = {f"{crops.domain_names[d]}/{crops.classes[c]}": int(((pool.domains[idx] == d) & (pool.labels[idx] == c)).sum())
                                   for d in np.unique(pool.domains) for c in range(len(crops.classes))}
        rows.append(row)
        print(json.dumps(row))
    keys = ("ce", "ct", "dg", "grad_ce", "grad_lambda_ct", "grad_gamma_dg", "cos_ce_dg")
    print("mean", json.dumps({k: round(float(np.mean([r[k] for r in rows])), 4) for k in keys}))


if __name__ == "__main__":
    main()
