"""WeightedMean against the mean written out over every sample."""

from __future__ import annotations

import torch

from lit_optim.training.metrics import WeightedMean


def test_weighted_mean_weighs_each_batch_by_its_size():
    gen = torch.Generator().manual_seed(0)
    losses = [torch.rand(n, generator=gen, dtype=torch.float64) for n in (128, 128, 7)]
    metric = WeightedMean()
    for batch in losses:
        metric.update(batch.mean(), len(batch))  # what a training step has: its batch mean
    expected = torch.cat(losses).double().mean()
    assert torch.allclose(metric.compute(), expected, rtol=1e-12)
    # The plain mean of the batch means (what torchmetrics' MeanMetric gives with
    # nan_strategy="disable") is measurably different here.
    assert not torch.allclose(torch.stack([b.mean() for b in losses]).double().mean(), expected,
                              rtol=1e-3)


def test_weighted_mean_keeps_float64_and_lets_nan_through():
    metric = WeightedMean()
    metric.update(torch.tensor(1.0, dtype=torch.float64) + 1e-12, 3)
    assert metric.compute().dtype == torch.float64 and metric.compute() == 1.0 + 1e-12
    metric.update(torch.tensor(float("nan")), 1)
    assert torch.isnan(metric.compute())
