"""Seconds per training epoch of every recipe, on a synthetic stand-in of its dataset.

The real datasets need a download; the stand-in has the same sample shape and training-set
size, and the recipe's network, optimizer, schedule and batch size. Each recipe trains
``--batches`` steps after a warm-up step; the epoch time is extrapolated from their median
step time (validation not included).

    python bench/recipe_epoch_times.py 2>/dev/null
    python bench/recipe_epoch_times.py --accelerator gpu --batches 50
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import torch
import yaml

from lit_optim import DATASETS, ClassificationData, ClassificationTask

ROOT = Path(__file__).resolve().parents[1]
TRAIN_SIZES = {"digits": 1437, "mnist": 60_000, "fashion_mnist": 60_000, "cifar10": 50_000}


class StepTimer(L.Callback):
    def __init__(self, device: torch.device) -> None:
        self.device, self.times, self._start = device, [], 0.0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync()
        self.times.append(time.perf_counter() - self._start)


def epoch_seconds(path: Path, args) -> tuple[str, float, int]:
    recipe = yaml.safe_load(path.read_text())
    dataset, data_cfg, model_cfg = recipe["data"]["dataset"], recipe["data"], recipe["model"]
    n_train = round(TRAIN_SIZES[dataset] * (1 - data_cfg.get("val_fraction", 0.2)))
    shape = list(DATASETS.get(dataset).input_shape)
    batch = data_cfg["batch_size"]
    # Enough samples for the timed steps only; the epoch figure scales by steps per epoch.
    data = ClassificationData(
        "synthetic",
        batch_size=batch,
        val_fraction=0.01,
        dataset_kwargs={
            "input_shape": shape,
            "num_samples": batch * (args.batches + 2),
            "num_test_samples": 8,
        },
    )
    task = ClassificationTask(data.input_shape, data.num_classes, **model_cfg)
    device = torch.device(
        "cuda"
        if args.accelerator in ("gpu", "cuda")
        or (args.accelerator == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    timer = StepTimer(device)
    with tempfile.TemporaryDirectory() as root:
        L.Trainer(
            default_root_dir=root,
            accelerator=args.accelerator,
            devices=1,
            max_epochs=1,
            limit_train_batches=args.batches + 1,
            limit_val_batches=0,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[timer],
        ).fit(task, datamodule=data)
    steps_per_epoch = -(-n_train // batch)
    return dataset, statistics.median(timer.times[1:]) * steps_per_epoch, steps_per_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    on_gpu = torch.cuda.is_available() and args.accelerator != "cpu"
    device = torch.cuda.get_device_name() if on_gpu else "cpu"
    print(f"device: {device}, threads {torch.get_num_threads()}")
    for path in sorted((ROOT / "recipes").glob("*/*.yaml")):
        if path.name == "search.yaml":
            continue
        dataset, seconds, steps = epoch_seconds(path, args)
        print(f"{path.relative_to(ROOT)!s:32} {steps:5d} steps/epoch  {seconds:8.2f} s/epoch")


if __name__ == "__main__":
    main()
