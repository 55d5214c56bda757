"""WeightedMean against the mean written out over every sample; TrainingTotals against
torchmetrics and the sample-weighted mean."""

from __future__ import annotations

import pytest
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
    assert not torch.allclose(
        torch.stack([b.mean() for b in losses]).double().mean(), expected, rtol=1e-3
    )


def test_weighted_mean_keeps_float64_and_lets_nan_through():
    metric = WeightedMean()
    metric.update(torch.tensor(1.0, dtype=torch.float64) + 1e-12, 3)
    assert metric.compute().dtype == torch.float64 and metric.compute() == 1.0 + 1e-12
    metric.update(torch.tensor(float("nan")), 1)
    assert torch.isnan(metric.compute())


@pytest.mark.parametrize("fold", [None, 2], ids=["default", "folded-every-2-steps"])
def test_training_totals_equal_torchmetrics_accuracy_and_a_sample_weighted_loss(fold):
    from lightning.pytorch.strategies import SingleDeviceStrategy
    from torchmetrics.classification import MulticlassAccuracy

    from lit_optim.training.metrics import TrainingTotals

    strategy = SingleDeviceStrategy(torch.device("cpu"))
    totals, reference = TrainingTotals(), MulticlassAccuracy(num_classes=5, average="micro")
    if fold:
        totals.FOLD = fold  # the sums taken mid-epoch, more than once
    assert totals.compute(strategy, torch.device("cpu")) is None  # no sample seen
    gen = torch.Generator().manual_seed(0)
    losses, sizes = [], [128, 128, 7, 64, 3]
    for n in sizes:
        logits, targets = torch.randn(n, 5, generator=gen), torch.randint(0, 5, (n,), generator=gen)
        loss = torch.nn.functional.cross_entropy(logits, targets)
        totals.update(loss, logits, targets)
        reference.update(logits, targets)
        losses.append(float(loss))
    mean_loss, accuracy = totals.compute(strategy, torch.device("cpu"))
    assert mean_loss.dtype == torch.float64
    assert float(mean_loss) == pytest.approx(
        sum(loss * n for loss, n in zip(losses, sizes)) / sum(sizes), rel=1e-12
    )
    assert float(accuracy) == pytest.approx(float(reference.compute()), rel=1e-7)
    totals.update(torch.tensor(float("nan")), torch.randn(3, 5), torch.zeros(3, dtype=torch.long))
    assert torch.isnan(totals.compute(strategy, torch.device("cpu"))[0])
    totals.reset()
    assert totals.compute(strategy, torch.device("cpu")) is None
