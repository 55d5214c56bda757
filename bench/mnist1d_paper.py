"""MNIST-1D's paper protocol in a plain PyTorch loop, as a reference for the recipes.

Greydanus & Kobak (2020) train on all 4,000 training sequences with Adam (lr 1e-2, no weight
decay), batch 100 taken in a fixed order, 6,000 steps, and test every 250 steps. This script
does the same, with no lit-optim code but the dataset loader, for the paper's four networks
(its MLP has a skip connection around the second layer, which lit-optim's ``mlp`` has not),
and prints for each seed the test accuracy at the end and the highest seen at any evaluation.

    python bench/mnist1d_paper.py [--seeds 3] [--steps 6000] [--nets logreg,mlp,cnn,gru] [--shuffle]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from lit_optim.data.mnist1d import load_mnist1d


class ResidualMLP(nn.Module):
    """The paper's MLP: 40-100-100-10, the second layer added to its input."""

    def __init__(self, width: int = 100) -> None:
        super().__init__()
        self.first, self.second, self.out = (
            nn.Linear(40, width),
            nn.Linear(width, width),
            nn.Linear(width, 10),
        )

    def forward(self, x):
        h = self.first(x.flatten(1)).relu()
        return self.out(h + self.second(h).relu())


class ConvNet(nn.Module):
    """Three stride-2 convolutions of 25 channels (kernels 5, 3, 3, padding 1), linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [nn.Conv1d(1, 25, 5, 2, 1), nn.Conv1d(25, 25, 3, 2, 1), nn.Conv1d(25, 25, 3, 2, 1)]
        )
        self.out = nn.Linear(125, 10)

    def forward(self, x):
        h = x.view(len(x), 1, -1)
        for conv in self.convs:
            h = conv(h).relu()
        return self.out(h.flatten(1))


class Recurrent(nn.Module):
    """A bidirectional GRU of 6 units, its outputs at all 40 steps into a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(1, 6, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * 6 * 40, 10)

    def forward(self, x):
        h, _ = self.gru(x.view(len(x), -1, 1))
        return self.out(h.flatten(1))


NETS = {
    "logreg": lambda: nn.Sequential(nn.Flatten(), nn.Linear(40, 10)),
    "mlp": ResidualMLP,
    "cnn": ConvNet,
    "gru": Recurrent,
}


def train(
    net: str, seed: int, steps: int, shuffle: bool, eval_every: int = 250
) -> tuple[float, float, float]:
    """(final test accuracy, highest test accuracy at an evaluation, seconds)."""
    data = load_mnist1d("data", False)
    x, y, x_test, y_test = data
    torch.manual_seed(seed)
    model = NETS[net]()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    accuracies, start = [], time.perf_counter()
    order = torch.arange(len(x))
    for step in range(steps + 1):
        at = step * 100 % len(x)
        if shuffle and at == 0:  # a new order each epoch, as lit-optim's data module serves
            order = torch.randperm(len(x))
        batch = order[at : at + 100]
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                accuracies.append((model(x_test).argmax(1) == y_test).float().mean().item())
    return accuracies[-1], max(accuracies), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--nets", default=",".join(NETS))
    parser.add_argument(
        "--shuffle",
        action="store_true",
        help="a new random batch order each epoch (the paper keeps one order)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'net':7} {'final test acc (mean ± std)':30} {'highest at an evaluation':28} per seed")
    for net in args.nets.split(","):
        runs = [train(net, seed, args.steps, args.shuffle) for seed in range(args.seeds)]
        finals, highs = [r[0] for r in runs], [r[1] for r in runs]

        def fmt(values):
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{100 * statistics.fmean(values):.1f} ± {100 * spread:.1f}"

        print(
            f"{net:7} {fmt(finals):30} {fmt(highs):28} "
            f"{', '.join(f'{100 * f:.1f}' for f in finals)} ({runs[0][2]:.0f} s a run)",
            flush=True,
        )


if __name__ == "__main__":
    main()
