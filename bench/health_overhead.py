"""Step-time overhead of the training-health callbacks against none, in one process.

MLP 784-200-100-50-10, Adam, batch 128, 60,000 synthetic MNIST-shaped samples (as
bench/fit_vs_raw.py). Each configuration runs in one fit whose callbacks are switched on in
odd epochs and off in even ones, so "with" and "without" alternate epoch by epoch under the
same machine state; the figure is the median of the per-pair ratios (training time only,
epoch 0 dropped as warm-up).

    python bench/health_overhead.py 2>/dev/null
    python bench/health_overhead.py --accelerator gpu
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

import lightning as L
import torch

from lit_optim import ClassificationData, ClassificationTask
from lit_optim.callbacks import GradientClipper, LayerDiagnostics, NonFiniteGuard

DATASET_KWARGS = {"num_samples": 60_000, "num_test_samples": 1_000, "input_shape": [1, 28, 28]}

CONFIGS = {
    "none": lambda: [],
    "guard+clipper+diagnostics": lambda: [
        NonFiniteGuard("rollback", check_every_n_steps=1),
        GradientClipper("norm", max_norm=1.0),
        LayerDiagnostics(every_n_steps=50),
    ],
    "  same, guard read every 50 steps": lambda: [
        NonFiniteGuard("rollback", check_every_n_steps=50),
        GradientClipper("norm", max_norm=1.0),
        LayerDiagnostics(every_n_steps=50),
    ],
    "guard only (every step)": lambda: [NonFiniteGuard("rollback")],
    "clipper only": lambda: [GradientClipper("norm", max_norm=1.0)],
    "diagnostics only (every 50)": lambda: [LayerDiagnostics(every_n_steps=50)],
}


class EveryOtherEpoch(L.Callback):
    """Forwards the wrapped callbacks' hooks in odd epochs only (setup and start always)."""

    def __init__(self, inner: list[L.Callback]) -> None:
        self.inner = inner

    def _on(self, trainer) -> bool:
        return trainer.current_epoch % 2 == 1

    def setup(self, trainer, pl_module, stage) -> None:
        for cb in self.inner:
            cb.setup(trainer, pl_module, stage)

    def on_train_start(self, trainer, pl_module) -> None:
        for cb in self.inner:
            cb.on_train_start(trainer, pl_module)

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        if self._on(trainer):
            for cb in self.inner:
                cb.on_before_backward(trainer, pl_module, loss)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self._on(trainer):
            for cb in self.inner:
                cb.on_before_optimizer_step(trainer, pl_module, optimizer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._on(trainer):
            for cb in self.inner:
                cb.on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


class TrainEpochTimer(L.Callback):
    def __init__(self, device: torch.device) -> None:
        self.device, self.times, self._start = device, [], 0.0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._sync()
        self._start = time.perf_counter()

    def on_validation_start(self, trainer, pl_module) -> None:  # training part only
        if not trainer.sanity_checking:
            self._sync()
            self.times.append(time.perf_counter() - self._start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--pairs", type=int, default=4, help="on/off epoch pairs per config")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    use_cuda = args.accelerator in ("gpu", "cuda") or (
        args.accelerator == "auto" and torch.cuda.is_available()
    )
    device = torch.device("cuda" if use_cuda else "cpu")
    print(
        f"device: {torch.cuda.get_device_name() if use_cuda else 'cpu'}, "
        f"threads {torch.get_num_threads()}"
    )
    data = ClassificationData(
        "synthetic", batch_size=128, val_fraction=1 / 12, dataset_kwargs=DATASET_KWARGS
    )
    for name, make in CONFIGS.items():
        if name == "none":
            continue
        task = ClassificationTask(
            data.input_shape, data.num_classes, network_kwargs={"hidden_dims": [200, 100, 50]}
        )
        timer = TrainEpochTimer(device)
        with tempfile.TemporaryDirectory() as root:
            L.Trainer(
                default_root_dir=root,
                accelerator=args.accelerator,
                devices=1,
                max_epochs=2 * args.pairs + 2,
                callbacks=[timer, EveryOtherEpoch(make())],
                log_every_n_steps=50,
                enable_progress_bar=False,
                enable_model_summary=False,
                enable_checkpointing=False,
            ).fit(task, datamodule=data)
        t = timer.times[2:]  # epochs 2, 3, ...: off, on, off, on …
        ratios = [on / off for off, on in zip(t[0::2], t[1::2])]
        print(
            f"{name:36s} off {statistics.median(t[0::2]):.3f} s  "
            f"on {statistics.median(t[1::2]):.3f} s"
            f"  overhead {100 * (statistics.median(ratios) - 1):+.1f}%"
            f"  (pairs: {', '.join(f'{100 * (r - 1):+.1f}' for r in ratios)})",
            flush=True,
        )
    print("target for guard+clipper+diagnostics: <= +5%")


if __name__ == "__main__":
    main()
