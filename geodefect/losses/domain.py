"""Losses for learning across domains (countries, cameras, datasets): contrastive + domain generalisation.

Named ``losses_domain`` (beside the task-agnostic ``geodefect.losses``) because both losses need
the *domain* of every sample, which no other task has.

- ``ce``: cross-entropy on the logits.
- ``ct``: supervised contrastive loss (Khosla et al. 2020) on cosine similarities of
  L2-normalised embeddings, temperature τ = 0.05, weight λ = 1.
- ``dg``: the domain-generalisation step of Trinh et al. (2024, "Multiple data sources and
  domain generalization learning method for road surface defect classification"), Algorithm 1,
  as implemented here (the paper gives no code; the choices below are ours and documented):

  For every domain k present in the batch (the meta-test domain), the other domains are the
  meta-train domains. For every class c present on both sides:

  1. meta-train difference vectors: d = z_i - z_j for same-class pairs from *different*
     meta-train domains (both orders; same-domain pairs only if c occurs in one meta-train
     domain); their mean μ_c and covariance Ξ_c, **detached** (they are the target
     distribution: letting gradients inflate Ξ_c would shrink every distance for free);
  2. meta-test difference vectors: d' = z_t - z_j, t in the meta-test domain, j in meta-train;
  3. loss_k = mean over c and d' of the Mahalanobis distance sqrt((d'-μ_c)ᵀ Ξ_c⁻¹ (d'-μ_c)),
     divided by sqrt(D) (D = embedding size): a vector drawn from the meta-train distribution
     has E[distance²] ≈ D, so the scaled term is ≈ 1 in distribution for every backbone
     (512-d ResNet-18 or 2048-d Inception-V3) and γ keeps one meaning across them.

  The gradients of loss_k are accumulated over the meta-test domains with weight γ / K
  (γ = 0.7) on top of the gradients of the task loss (ce [+ λ ct]) and applied in one
  optimizer step of size η (the learning rate). :func:`dg_training_step` does exactly that,
  one ``backward`` per meta-test domain; :func:`compute_domain_losses` returns the same total
  as one scalar (identical gradients, since gradients add) for loops that call ``backward``
  themselves.

  Embeddings are L2-normalised before the statistics (same space as the contrastive loss,
  so the absolute ridge below has a fixed scale). Ξ_c is regularised so it always inverts:
  Ξ' = (1 - s)·Ξ + s·(tr Ξ / D)·I + ε·I (shrinkage s = 0.1 towards the scaled identity,
  ridge ε = 1e-3); with fewer pairs than dimensions (the usual case: D = 512) Ξ is singular
  and only Ξ' inverts. Pairs are subsampled to ``max_pairs`` per class (all pairs grow as n²).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from geodefect.errors import ConfigError

LOSS_NAMES = ("ce", "ct", "dg")


@dataclass(frozen=True)
class DomainLossConfig:
    """Which losses and their weights (defaults from the paper)."""

    losses: tuple[str, ...] = ("ce",)
    temperature: float = 0.05
    contrastive_weight: float = 1.0
    dg_weight: float = 0.7
    shrinkage: float = 0.1
    ridge: float = 1e-3
    max_pairs: int = 512


def parse_losses(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"ce,ct,dg"`` -> ``("ce", "ct", "dg")``; ``ce`` is required, names are checked."""
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    bad = [n for n in names if n not in LOSS_NAMES]
    if bad or "ce" not in names or len(set(names)) != len(names):
        raise ConfigError(
            f"`losses` must be ce, ce,ct, ce,dg or ce,ct,dg (comma-separated, no repeats), got {spec!r}"
        )
    return tuple(n for n in LOSS_NAMES if n in names)


def supervised_contrastive_loss(embedding: torch.Tensor, labels: torch.Tensor, *, temperature: float = 0.05) -> torch.Tensor:
    """Supervised contrastive loss on cosine similarity.

    For anchor i with positives P(i) (same label, j ≠ i):
    ``l_i = -1/|P(i)| Σ_{p∈P(i)} log( exp(s_ip/τ) / Σ_{a≠i} exp(s_ia/τ) )``, s = cosine similarity;
    the loss is the mean of l_i over anchors that have a positive (0 if none has).

    Args:
        embedding: (B, D) float.
        labels: (B,) int.
    """
    z = F.normalize(embedding, dim=1)
    sim = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    log_prob = sim - torch.logsumexp(sim.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = pos.sum(1)
    has = n_pos > 0
    if not has.any():
        return embedding.sum() * 0.0
    per_anchor = -(log_prob * pos).sum(1)[has] / n_pos[has]
    return per_anchor.mean()


def regularized_inverse(cov: torch.Tensor, *, shrinkage: float = 0.1, ridge: float = 1e-3) -> torch.Tensor:
    """Inverse of ``(1-s)·cov + s·(tr(cov)/D)·I + ε·I`` (positive definite for any PSD ``cov``, ε > 0)."""
    if ridge <= 0:
        raise ConfigError(f"`ridge` must be > 0 so the covariance always inverts, got {ridge}")
    d = cov.shape[0]
    eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
    reg = (1 - shrinkage) * cov + (shrinkage * torch.trace(cov) / d + ridge) * eye
    return torch.cholesky_inverse(torch.linalg.cholesky(reg))


def mahalanobis_distance(d: torch.Tensor, mean: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """(N, D) vectors -> (N,) ``sqrt((d-μ)ᵀ Ξ⁻¹ (d-μ))`` (a tiny floor keeps the gradient finite at 0)."""
    x = d - mean
    return torch.sqrt(((x @ inverse) * x).sum(1).clamp_min(1e-12))


def distribution_distance(d: torch.Tensor, samples: torch.Tensor, *, shrinkage: float = 0.1, ridge: float = 1e-3) -> torch.Tensor:
    """Mahalanobis distances (N,) of ``d`` (N, D) to the regularised Gaussian fitted to ``samples`` (M, D).

    Same value as ``mahalanobis_distance(d, μ, regularized_inverse(Ξ))`` without forming an
    inverse: with M < D (the usual case, few pairs in a 512-2048-d embedding) through the
    Woodbury identity, Ξ' = b·I + U·Uᵀ with U = sqrt((1-s)/(M-1))·Cᵀ (C = centred samples,
    b = s·tr Ξ/D + ε), so only an M x M system is factorised; otherwise by a Cholesky solve.
    Computed in float64 (the 1/b factor amplifies float32 rounding), returned in ``d``'s dtype.
    """
    if ridge <= 0:
        raise ConfigError(f"`ridge` must be > 0 so the covariance always inverts, got {ridge}")
    d64, x64 = d.double(), samples.double()
    mean = x64.mean(0)
    centred = x64 - mean
    m, dim = centred.shape
    scale = (1 - shrinkage) / max(m - 1, 1)
    trace = (centred * centred).sum() / max(m - 1, 1)
    b = shrinkage * trace / dim + ridge
    y = d64 - mean
    if m < dim:
        u = centred.T * math.sqrt(scale)  # (D, M)
        k = b * torch.eye(m, dtype=torch.float64, device=d.device) + u.T @ u
        v = y @ u  # (N, M)
        w = torch.linalg.solve_triangular(torch.linalg.cholesky(k), v.T, upper=False)  # (M, N)
        q = ((y * y).sum(1) - (w * w).sum(0)) / b
    else:
        cov = scale * (centred.T @ centred) + b * torch.eye(dim, dtype=torch.float64, device=d.device)
        w = torch.linalg.solve_triangular(torch.linalg.cholesky(cov), y.T, upper=False)
        q = (w * w).sum(0)
    return torch.sqrt(q.clamp_min(1e-12)).to(d.dtype)


def pair_differences(a: torch.Tensor, b: torch.Tensor, *, max_pairs: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """All ``a_i - b_j`` as (Na·Nb, D), or a random subset of ``max_pairs`` of them."""
    n = len(a) * len(b)
    if n <= max_pairs:
        return (a[:, None, :] - b[None, :, :]).reshape(n, -1)
    idx = torch.randperm(n, generator=generator, device="cpu")[:max_pairs].to(a.device)
    return a[idx // len(b)] - b[idx % len(b)]


def meta_train_differences(z: torch.Tensor, domains: torch.Tensor, *, max_pairs: int, generator=None) -> torch.Tensor:
    """Same-class difference vectors between different meta-train domains (both orders).

    ``z``: (N, D) embeddings of one class; ``domains``: (N,). Falls back to pairs within the
    single domain (i ≠ j) when only one domain is present. Returns (M, D), M may be 0.
    """
    doms = torch.unique(domains)
    parts = []
    if len(doms) == 1:
        n = len(z)
        if n < 2:
            return z[:0]
        i, j = torch.triu_indices(n, n, offset=1, device=z.device)
        d = z[i] - z[j]
        return torch.cat([d, -d])[: 2 * max_pairs]
    budget = max(1, max_pairs // (len(doms) * (len(doms) - 1)))
    for a in doms:
        for b in doms:
            if a != b:
                parts.append(pair_differences(z[domains == a], z[domains == b], max_pairs=budget, generator=generator))
    return torch.cat(parts)


def dg_loss_for_domain(
    embedding: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor, test_domain: int, cfg: DomainLossConfig,
    *, generator: torch.Generator | None = None,
) -> torch.Tensor | None:
    """Mahalanobis loss with ``test_domain`` as meta-test; None when no class is on both sides."""
    z = F.normalize(embedding, dim=1)
    is_test = domains == test_domain
    losses = []
    for c in torch.unique(labels[is_test]):
        tr = ~is_test & (labels == c)
        te = is_test & (labels == c)
        if tr.sum() < 2:
            continue
        d_train = meta_train_differences(z[tr].detach(), domains[tr], max_pairs=cfg.max_pairs, generator=generator)
        if len(d_train) < 1:
            continue
        d_test = pair_differences(z[te], z[tr].detach(), max_pairs=cfg.max_pairs, generator=generator)
        dist = distribution_distance(d_test, d_train, shrinkage=cfg.shrinkage, ridge=cfg.ridge)
        losses.append(dist.mean() / math.sqrt(z.shape[1]))
    if not losses:
        return None
    return torch.stack(losses).mean()


def task_loss(output, labels: torch.Tensor, cfg: DomainLossConfig) -> dict[str, torch.Tensor]:
    """``{"ce": .., ["ct": ..], "task": ce + λ·ct}``."""
    parts = {"ce": F.cross_entropy(output.logits, labels)}
    total = parts["ce"]
    if "ct" in cfg.losses:
        parts["ct"] = supervised_contrastive_loss(output.embedding, labels, temperature=cfg.temperature)
        total = total + cfg.contrastive_weight * parts["ct"]
    parts["task"] = total
    return parts


def dg_losses(output, labels: torch.Tensor, domains: torch.Tensor, cfg: DomainLossConfig, *, generator=None) -> list[torch.Tensor]:
    """One Mahalanobis loss per meta-test domain present in the batch (empty with < 2 domains)."""
    doms = torch.unique(domains)
    if len(doms) < 2:
        return []
    out = []
    for k in doms.tolist():
        loss = dg_loss_for_domain(output.embedding, labels, domains, k, cfg, generator=generator)
        if loss is not None:
            out.append(loss)
    return out


def compute_domain_losses(output, labels: torch.Tensor, domains: torch.Tensor, cfg: DomainLossConfig, *, generator=None) -> dict[str, torch.Tensor]:
    """All selected losses; ``"loss"`` = task + (γ/K)·Σ_k dg_k (same gradients as :func:`dg_training_step`)."""
    parts = task_loss(output, labels, cfg)
    total = parts["task"]
    if "dg" in cfg.losses:
        per_domain = dg_losses(output, labels, domains, cfg, generator=generator)
        if per_domain:
            parts["dg"] = torch.stack(per_domain).mean()
            total = total + cfg.dg_weight * parts["dg"]
        else:
            parts["dg"] = total.new_zeros(())
    parts["loss"] = total
    return parts


def dg_training_step(model, batch: dict, optimizer, cfg: DomainLossConfig, *, generator=None) -> dict[str, float]:
    """One optimisation step of Algorithm 1 with explicit gradient accumulation.

    ``zero_grad``; backward of the task loss; for each meta-test domain k, backward of
    ``(γ/K)·loss_k`` (gradients accumulate in ``.grad``); one ``optimizer.step()`` (step η =
    the optimizer's learning rate). Returns the loss values as floats.
    """
    optimizer.zero_grad(set_to_none=True)
    output = model(batch["image"])
    parts = task_loss(output, batch["label"], cfg)
    per_domain = dg_losses(output, batch["label"], batch["domain"], cfg, generator=generator) if "dg" in cfg.losses else []
    parts["task"].backward(retain_graph=bool(per_domain))
    for i, loss_k in enumerate(per_domain):
        (cfg.dg_weight / len(per_domain) * loss_k).backward(retain_graph=i < len(per_domain) - 1)
    optimizer.step()
    values = {k: float(v.detach()) for k, v in parts.items()}
    if "dg" in cfg.losses:
        values["dg"] = float(torch.stack(per_domain).mean().detach()) if per_domain else 0.0
    values["loss"] = values["task"] + cfg.dg_weight * values.get("dg", 0.0)
    return values
