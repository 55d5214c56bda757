"""Seconds per epoch: lit-optim's Lightning training against a plain PyTorch loop.

Same network (MLP 784-200-100-50-10), same synthetic MNIST-shaped data (60,000 samples, of
which val_fraction go to validation), batch 128, Adam at lr 1e-3, one validation pass per epoch
in all. lit-optim runs as ``lit-optim fit`` does: ClassificationTask, the CLI's callbacks (its
progress display, best and last checkpoint, run summary …), a CSV logger, logging every 50
steps. Against the plain loop, lit-optim's epochs and plain-loop epochs alternate in one
process (a plain-loop epoch runs between each two lit-optim epochs, outside their timing).

"bare Lightning" is the same Trainer (CSV logger, Lightning's checkpoint, no bar) with a bare
LightningModule; "lit-optim / bare Lightning" is what lit-optim adds per epoch. Two Trainers
cannot alternate in one process, so the two fits run in two processes that take turns: one
holds the machine for ``--turn`` training batches (and whatever runs between them: validation,
checkpoints, epoch-end hooks) while the other waits, then hands over. Each sums its own turns
per epoch, so both see the same machine state to within a turn (~0.1 s): on these shared
machines an epoch of one fit varies by ±15% from one second to the next, more than what is
measured. The figure is the median of the per-epoch ratios, the first epoch dropped as warm-up.

    python bench/fit_vs_raw.py 2>/dev/null      # CPU, or the GPU if there is one
    python bench/fit_vs_raw.py --accelerator cpu --epochs 6 --breakdown   # where the time goes
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue
import statistics
import tempfile
import time
import warnings

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger

from lit_optim import ClassificationData, ClassificationTask
from lit_optim.training.models import MLP

HIDDEN = [200, 100, 50]
BATCH = 128
DATASET_KWARGS = {"num_samples": 60_000, "num_test_samples": 1_000, "input_shape": [1, 28, 28]}


class PlainLoop:
    """The loop a careful PyTorch user writes: tensors on the device, randperm batches,
    forward, cross-entropy, backward, Adam; then a no-grad validation pass."""

    def __init__(self, data: ClassificationData, device: torch.device) -> None:
        (self.x, self.y), (self.vx, self.vy) = data._tensors["train"], data._tensors["val"]
        self.device = device
        self.model = MLP(data.input_shape, data.num_classes, HIDDEN).to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)

    def epoch(self) -> float:
        x, y, vx, vy, model, opt = self.x, self.y, self.vx, self.vy, self.model, self.opt
        _sync(self.device)
        start = time.perf_counter()
        model.train()
        perm = torch.randperm(len(y), device=self.device)
        for i in range(0, len(y), BATCH):
            idx = perm[i : i + BATCH]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            correct = torch.zeros((), device=self.device)
            for i in range(0, len(vy), 1024):
                correct += (model(vx[i : i + 1024]).argmax(1) == vy[i : i + 1024]).sum()
            self.val_acc = (correct / len(vy)).item()
        _sync(self.device)
        return time.perf_counter() - start


class Interleave(L.Callback):
    """Times every lit-optim epoch whole (training, validation, every epoch-end hook, the
    checkpoint written) from one epoch's start to the next, and runs one plain-loop epoch
    between each two, outside the timing, so both see the same machine state."""

    def __init__(self, plain: PlainLoop, device: torch.device) -> None:
        self.plain, self.device = plain, device
        self.lit_times: list[float] = []
        self.raw_times: list[float] = []
        self._start: float | None = None

    def _lap(self) -> None:
        _sync(self.device)
        if self._start is not None:
            self.lit_times.append(time.perf_counter() - self._start)
            self.raw_times.append(self.plain.epoch())

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._lap()
        self._start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:  # the last epoch, all its hooks run
        self._lap()
        self._start = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class BareStep(ClassificationTask):
    """Only forward, loss and return: what Lightning's automatic optimization costs alone."""

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def on_train_epoch_end(self) -> None:
        pass


class ManualStep(BareStep):
    """The same, with Lightning's manual optimization (no closure, fewer hooks)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        opt.zero_grad()
        loss = super().training_step(batch, batch_idx)
        self.manual_backward(loss)
        opt.step()
        return loss


class BareLightning(L.LightningModule):
    """A bare LightningModule as a user writes one: the same network, loss and Adam; the
    training step returns the loss, validation logs its loss and accuracy."""

    def __init__(self, input_shape, num_classes: int, **_: object) -> None:
        super().__init__()
        self.net = MLP(input_shape, num_classes, HIDDEN)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class TakeTurns(L.Callback):
    """Holds the machine for ``turn`` training batches, then hands it to the other process and
    waits for it back (two semaphores: its own, released by the other, and the other's).

    ``epochs`` gets the time this process held the machine in each epoch, from one epoch's
    start to the next (the last: to the end of training), so waits are not counted; the setup
    before the first epoch is not either."""

    def __init__(self, mine, theirs, turn: int, device: torch.device) -> None:
        self.mine, self.theirs, self.turn, self.device = mine, theirs, turn, device
        self.epochs: list[float] = []
        self._held = 0.0  # seconds held since this epoch's start
        self._since = 0.0  # when this turn began
        self._started = False  # the first epoch began (what came before it is setup)

    def _take(self) -> None:
        if not self.mine.acquire(timeout=1800):
            raise RuntimeError("the other fit did not hand over in 30 minutes")
        self._since = time.perf_counter()

    def _hand_over(self) -> None:
        _sync(self.device)  # its queued GPU work is its own
        self._held += time.perf_counter() - self._since
        self.theirs.release()

    def setup(self, trainer, pl_module, stage) -> None:
        self._take()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._hand_over()
        if self._started:
            self.epochs.append(self._held)
        self._started, self._held = True, 0.0
        self._take()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (batch_idx + 1) % self.turn == 0:
            self._hand_over()
            self._take()

    def on_train_end(self, trainer, pl_module) -> None:
        self._hand_over()
        self.epochs.append(self._held)


def lit_optim_trainer_args() -> dict:
    """The callbacks and plugins ``lit-optim fit`` gives the Trainer (objective val_acc)."""
    from lit_optim.cli.trainer_setup import with_cli_defaults

    args, _ = with_cli_defaults({}, objective="val_acc", direction="max")
    return args


QUIET = {"enable_progress_bar": False, "logger": False, "enable_checkpointing": False}
# name -> (module class, Trainer overrides). The first is what `lit-optim fit` runs; the
# second the same Trainer (CSV logs, a checkpoint, logging every 50 steps) with a bare module
# and none of lit-optim's callbacks; the rest take lit-optim's parts away one at a time.
VARIANTS = {
    "lit-optim fit": (ClassificationTask, "cli"),
    "bare Lightning": (BareLightning, {"enable_progress_bar": False, "logger": "csv"}),
    "  task, bar off": (ClassificationTask, {"enable_progress_bar": False}),
    "  + no logger/ckpt": (ClassificationTask, QUIET),
    "  + no lit metrics": (BareStep, QUIET),
    "  + manual optim.": (ManualStep, QUIET),
}


def make_data(args) -> ClassificationData:
    return ClassificationData(
        "synthetic", batch_size=BATCH, val_fraction=args.val_fraction, dataset_kwargs=DATASET_KWARGS
    )


def make_fit(name: str, args, data: ClassificationData, root: str, callbacks: list):
    """The variant's module and Trainer, with ``callbacks`` first among its callbacks."""
    task_cls, overrides = VARIANTS[name]
    task = task_cls(
        data.input_shape,
        data.num_classes,
        network="mlp",
        network_kwargs={"hidden_dims": HIDDEN},
        optimizer="adam",
        lr=1e-3,
    )
    if overrides == "cli":
        cli = lit_optim_trainer_args()
        overrides = {"callbacks": cli["callbacks"], "plugins": cli["plugins"], "logger": "csv"}
    if overrides.get("logger") == "csv":
        overrides = {**overrides, "logger": CSVLogger(root)}
    trainer = L.Trainer(
        **{
            "default_root_dir": root,
            "max_epochs": args.epochs,
            "accelerator": args.accelerator,
            "devices": 1,
            "log_every_n_steps": 50,
            "enable_model_summary": False,
            **overrides,
            "callbacks": [*callbacks, *overrides.get("callbacks", [])],
        }
    )
    return task, trainer


def against_plain_loop(
    args, device: torch.device, variants: list[str]
) -> dict[str, tuple[list, list]]:
    """Fit each variant on the same data module, a plain-loop epoch between each two of its
    epochs; returns {variant: (its epoch times, the plain loop's)}."""
    data = make_data(args)
    plain: list[PlainLoop] = []
    results = {}
    for name in variants:
        timer: list[Interleave] = []

        class StartPlainLoop(L.Callback):
            # The plain loop reads the same device tensors, once the data module has them.
            def on_fit_start(self, trainer, pl_module) -> None:
                if not plain:
                    plain.append(PlainLoop(data, device))
                timer.append(Interleave(plain[0], device))
                trainer.callbacks.append(timer[0])

        with tempfile.TemporaryDirectory() as root:
            task, trainer = make_fit(name, args, data, root, [StartPlainLoop()])
            trainer.fit(task, datamodule=data)
        # The first epoch of each is warm-up (allocator, lazy init).
        results[name] = (timer[0].lit_times[1:], timer[0].raw_times[1:])
    return results


def _fit_taking_turns(name: str, args, device: torch.device, mine, theirs, results) -> None:
    """One process's fit in ``taking_turns`` (a spawned process: module level)."""
    warnings.filterwarnings("ignore", ".*(does not have many workers|Tip:).*")
    data = make_data(args)
    turns = TakeTurns(mine, theirs, args.turn, device)
    with tempfile.TemporaryDirectory() as root:
        task, trainer = make_fit(name, args, data, root, [turns])
        trainer.fit(task, datamodule=data)
    results.put((name, turns.epochs[1:]))  # the first epoch is warm-up


def taking_turns(args, device: torch.device, first: str) -> dict[str, list[float]]:
    """lit-optim fit and bare Lightning in two processes that take turns (``first`` starts);
    returns each one's epoch times."""
    ctx = multiprocessing.get_context("spawn")  # a forked child would share the parent's
    order = sorted(PAIR, key=lambda n: n != first)  # OpenMP and CUDA state
    semaphores = [ctx.Semaphore(1), ctx.Semaphore(0)]
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_fit_taking_turns,
            args=(name, args, device, semaphores[i], semaphores[1 - i], results),
        )
        for i, name in enumerate(order)
    ]
    for proc in procs:
        proc.start()
    epochs: dict[str, list[float]] = {}
    try:
        while len(epochs) < len(procs):
            try:
                name, times = results.get(timeout=5)
                epochs[name] = times
            except queue.Empty:
                failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if failed:
                    raise RuntimeError(f"a fit exited with {failed[0]}; see its output above")
    finally:
        for proc in procs:
            if proc.is_alive() and len(epochs) < len(procs):
                proc.terminate()
            proc.join()
    return epochs


PAIR = ("lit-optim fit", "bare Lightning")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "gpu", "cuda"])
    parser.add_argument("--epochs", type=int, default=8, help="the first is warm-up")
    parser.add_argument("--val-fraction", type=float, default=1 / 12)
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="runs of lit-optim and bare Lightning taking turns, each starting in turn (default 4)",
    )
    parser.add_argument(
        "--turn",
        type=int,
        default=43,
        help="training batches a fit runs before it hands over (default 43, ten turns an epoch)",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time variants that remove one overhead at a time",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", ".*(does not have many workers|Tip:).*")
    use_cuda = args.accelerator in ("gpu", "cuda") or (
        args.accelerator == "auto" and torch.cuda.is_available()
    )
    device = torch.device("cuda" if use_cuda else "cpu")
    print(
        f"device: {torch.cuda.get_device_name() if use_cuda else 'cpu'}, "
        f"torch {torch.__version__}, lightning {L.__version__}, threads {torch.get_num_threads()}"
    )
    names = list(VARIANTS) if args.breakdown else list(VARIANTS)[:2]
    results = against_plain_loop(args, device, names)
    lit, raw = results[names[0]]
    for i, (lt, rt) in enumerate(zip(lit, raw), start=2):
        print(f"epoch {i}: lit-optim {lt:.3f} s, plain loop {rt:.3f} s, ratio {lt / rt:.3f}")
    r, l_ = statistics.median(raw), statistics.median(lit)
    print(f"\nplain PyTorch loop : {r:.3f} s/epoch (median of {len(raw)})")
    print(f"lit-optim fit      : {l_:.3f} s/epoch (median of {len(lit)})")
    for name, (lit, raw) in results.items():
        ratios = [lt / rt for lt, rt in zip(lit, raw)]
        print(
            f"ratio {name:20s}: {statistics.median(ratios):.3f} median of per-epoch ratios "
            f"(min {min(ratios):.3f}, max {max(ratios):.3f})"
        )
    print("target for lit-optim fit against the plain loop: <= 1.15\n")

    ratios: list[float] = []
    for round_ in range(args.rounds):
        epochs = taking_turns(args, device, first=PAIR[round_ % 2])
        these = [a / b for a, b in zip(*(epochs[name] for name in PAIR))]
        ratios += these
        print(
            f"round {round_ + 1} ({PAIR[round_ % 2]} first): lit-optim / bare Lightning per "
            f"epoch {' '.join(f'{x:.3f}' for x in these)}; bare Lightning "
            f"{statistics.median(epochs['bare Lightning']):.3f} s/epoch"
        )
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    print(
        f"\nlit-optim / bare Lightning: {statistics.median(ratios):.3f} (median of "
        f"{len(ratios)} per-epoch ratios, quartiles {q1:.3f}-{q3:.3f}; target <= 1.05)"
    )


if __name__ == "__main__":
    main()
