"""Step-time overhead of the training-health callbacks against none, in one process.

MLP 784-200-100-50-10, Adam, batch 128, 60,000 synthetic MNIST-shaped samples (as
bench/fit_vs_raw.py). Configurations alternate fit by fit, each timed per training epoch
(validation excluded, first epoch dropped as warm-up); the figure is each configuration's
median epoch over the baseline's median.

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
    parser.add_argument("--epochs", type=int, default=3, help="per fit; the first is warm-up")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    use_cuda = args.accelerator in ("gpu", "cuda") or (
        args.accelerator == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    print(f"device: {torch.cuda.get_device_name() if use_cuda else 'cpu'}, "
          f"threads {torch.get_num_threads()}")
    data = ClassificationData("synthetic", batch_size=128, val_fraction=1 / 12,
                              dataset_kwargs=DATASET_KWARGS)
    times: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for _ in range(args.rounds):
        for name, make in CONFIGS.items():
            task = ClassificationTask(data.input_shape, data.num_classes,
                                      network_kwargs={"hidden_dims": [200, 100, 50]})
            timer = TrainEpochTimer(device)
            with tempfile.TemporaryDirectory() as root:
                L.Trainer(default_root_dir=root, accelerator=args.accelerator, devices=1,
                          max_epochs=args.epochs, callbacks=[timer, *make()],
                          log_every_n_steps=50, enable_progress_bar=False,
                          enable_model_summary=False, enable_checkpointing=False,
                          ).fit(task, datamodule=data)
            times[name] += timer.times[1:]
    base = statistics.median(times["none"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:36s} {median:.3f} s/epoch  overhead {100 * (median / base - 1):+.1f}%")
    print("target for guard+clipper+diagnostics: <= +5%")


if __name__ == "__main__":
    main()
