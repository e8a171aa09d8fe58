"""Contrastive and domain-generalisation losses: hand-computed values, regularisation, the DG step."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from geodefect.errors import ConfigError
from geodefect.losses.domain import (
    DomainLossConfig,
    compute_domain_losses,
    dg_loss_for_domain,
    dg_training_step,
    mahalanobis_distance,
    parse_losses,
    regularized_inverse,
    supervised_contrastive_loss,
)
from geodefect.models.classifiers import ClassifierOutput


def test_contrastive_loss_by_hand():
    z = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])  # norms differ: cosine only
    labels = torch.tensor([0, 0, 1])
    # anchors 0 and 1: positive sim 1, negative sim 0 -> -(1 - log(e + 1)); anchor 2 has no positive
    expected = math.log(math.e + 1) - 1
    assert supervised_contrastive_loss(z, labels, temperature=1.0).item() == pytest.approx(expected, rel=1e-6)
    t = 0.05  # the paper's temperature: -(1/t - log(e^(1/t) + 1))
    assert supervised_contrastive_loss(z, labels, temperature=t).item() == pytest.approx(math.log(math.exp(1 / t) + 1) - 1 / t, abs=1e-6)


def test_contrastive_loss_without_positives_is_zero_with_grad():
    z = torch.randn(3, 4, requires_grad=True)
    loss = supervised_contrastive_loss(z, torch.tensor([0, 1, 2]))
    assert loss.item() == 0.0
    loss.backward()
    assert z.grad is not None


def test_contrastive_loss_prefers_clustered_classes():
    labels = torch.tensor([0, 0, 1, 1])
    clustered = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.1, 1.0]])
    assert supervised_contrastive_loss(clustered, labels) < supervised_contrastive_loss(mixed, labels)


def test_regularized_inverse_of_singular_covariances():
    zero = torch.zeros(3, 3, dtype=torch.float64)
    assert torch.allclose(regularized_inverse(zero, ridge=1e-3), torch.eye(3, dtype=torch.float64) * 1e3)
    rank1 = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)  # det 0
    inv = regularized_inverse(rank1, shrinkage=0.1, ridge=1e-3)
    reg = 0.9 * rank1.numpy() + (0.1 * 1.0 + 1e-3) * np.eye(2)
    np.testing.assert_allclose(inv.numpy(), np.linalg.inv(reg), rtol=1e-10)
    with pytest.raises(ConfigError, match="ridge"):
        regularized_inverse(rank1, ridge=0.0)


def test_regularized_inverse_of_few_samples_in_many_dimensions():
    d = torch.randn(5, 64, dtype=torch.float64)  # 5 vectors in 64-D: covariance of rank <= 4
    cov = (d - d.mean(0)).T @ (d - d.mean(0)) / 4
    assert torch.linalg.matrix_rank(cov) <= 4
    inv = regularized_inverse(cov)
    assert torch.isfinite(inv).all()
    eye = (0.9 * cov + (0.1 * torch.trace(cov) / 64 + 1e-3) * torch.eye(64, dtype=torch.float64)) @ inv
    assert torch.allclose(eye, torch.eye(64, dtype=torch.float64), atol=1e-8)


def test_mahalanobis_distance_by_hand():
    inv = torch.diag(torch.tensor([1 / 4.0, 1.0]))
    d = torch.tensor([[2.0, 0.0], [0.0, 3.0], [2.0, 3.0]])
    out = mahalanobis_distance(d, torch.zeros(2), inv)
    assert torch.allclose(out, torch.tensor([1.0, 3.0, math.sqrt(10.0)]))


def test_dg_loss_by_hand():
    # meta-train: (1,0) in domain 0 and (0,1) in domain 1; meta-test (domain 2): (1,0); one class
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 0])
    domains = torch.tensor([0, 1, 2])
    cfg = DomainLossConfig(losses=("ce", "dg"))
    # train differences ±(1,-1): mean 0, covariance [[2,-2],[-2,2]]; regularised:
    # 0.9*cov + (0.1*2 + 0.001) I, whose eigenvalue along (1,-1) is 3.6 + 0.201 = 3.801.
    # test differences: (0,0) -> 0 and (1,-1) -> sqrt(2 / 3.801)
    expected = (1e-6 + math.sqrt(2 / 3.801)) / 2 / math.sqrt(2)  # scaled by sqrt(D), D = 2
    got = dg_loss_for_domain(z, labels, domains, 2, cfg)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # class 0 has a single meta-train sample when domain 1 holds class 1: no distribution -> None
    assert dg_loss_for_domain(z, torch.tensor([0, 1, 0]), domains, 2, cfg) is None


def test_parse_losses():
    assert parse_losses("ce,ct,dg") == ("ce", "ct", "dg")
    assert parse_losses("dg, ce") == ("ce", "dg")
    for bad in ("ct", "ce,xx", "ce,ce", ""):
        with pytest.raises(ConfigError, match="losses"):
            parse_losses(bad)


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(6, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        e = self.embed(x)
        return ClassifierOutput(self.head(e), e)


def _toy_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    n, doms = 12, 3
    labels = torch.arange(n * doms) % 2
    domains = torch.arange(n * doms) // n
    x = torch.randn(n * doms, 6, generator=g) * 0.3
    x[:, 0] += labels * 2.0  # the class signal
    x[:, 1:4] += torch.nn.functional.one_hot(domains, 3) * 3.0  # a strong domain shift
    return {"image": x, "label": labels, "domain": domains}


def test_dg_step_equals_single_backward_of_total():
    batch = _toy_batch()
    cfg = DomainLossConfig(losses=("ce", "ct", "dg"))
    a, b = _Toy(), _Toy()
    dg_training_step(a, batch, torch.optim.SGD(a.parameters(), lr=0.0), cfg)
    compute_domain_losses(b(batch["image"]), batch["label"], batch["domain"], cfg)["loss"].backward()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-6)


def test_dg_step_changes_weights_and_reduces_mahalanobis_term():
    batch = _toy_batch()
    cfg = DomainLossConfig(losses=("ce", "dg"), dg_weight=5.0)
    model = _Toy()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    first = dg_training_step(model, batch, opt, cfg)
    for _ in range(25):
        last = dg_training_step(model, batch, opt, cfg)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    assert last["dg"] < 0.7 * first["dg"]
    assert math.isfinite(last["loss"])


@pytest.mark.parametrize(("m", "dim"), [(5, 40), (60, 8)])  # Woodbury path (M < D) and dense path
def test_distribution_distance_matches_explicit_inverse(m, dim):
    from geodefect.losses.domain import distribution_distance

    g = torch.Generator().manual_seed(m)
    samples = torch.randn(m, dim, generator=g, dtype=torch.float64)
    d = torch.randn(7, dim, generator=g, dtype=torch.float64)
    mean = samples.mean(0)
    cov = (samples - mean).T @ (samples - mean) / (m - 1)
    ref = mahalanobis_distance(d, mean, regularized_inverse(cov, shrinkage=0.1, ridge=1e-3))
    assert torch.allclose(distribution_distance(d, samples, shrinkage=0.1, ridge=1e-3), ref, rtol=1e-6)
