"""One clock for every tuner: the best model each finds by fixed wall-clock marks.

A tuner is judged by how soon it finds a good model. Each tuner below is started as its user
starts it (a fresh process: imports, study set-up and start-up count), given the same space,
the same recipe and the same wall-clock budget, and stopped (SIGTERM, then SIGKILL) when the
budget is spent:

- ``lit-tune``: the default ``lit-tune run`` (populations auto, median pruner, threads auto);
- ``lit-tune-pbt``: ``lit-tune run --algorithm pbt`` (population based training inside each
  population);
- ``lit-tune-pop1``: ``lit-tune run --population 1`` (one trial at a time);
- ``naive``: an Optuna script as a Lightning user writes it (TPE, median pruner,
  ``PyTorchLightningPruningCallback``, a Trainer per trial, torch's default threads);
- ``hyperband``: Optuna TPE + HyperbandPruner over a plain PyTorch loop on ONE thread;
- ``ray-asha``: Ray Tune ASHA + OptunaSearch (TPE) over the same plain loop, one trial per
  core, one thread each (only where ``ray[tune]`` is installed: ``pip install 'ray[tune]'``;
  never a dependency of lit-optim);
- ``ray-pbt``: Ray Tune's PopulationBasedTraining (8 trials, checkpoints between them) over
  the same plain loop, one trial per core (also only where Ray is installed).

The plain loop trains what the recipe trains (its network, optimizer, schedule, batch size and
epochs, on the same data split): only the tuner differs. Printed per tuner, median over the
seeds: epochs trained in the budget; the best final validation metric of a trial that trained
all its epochs by each mark; the time to reach a target (the best value the reference tuner,
ASHA where Ray is installed, else Hyperband, reached in the budget, per seed); and for
lit-tune's populations the fraction of slot-epochs spent on live members. Also the
arithmetic floor: how many epochs the measured one-thread matmul rate allows in the budget on
every core; and the floor of a bare vectorized loop (the members' stacked matmuls, backward
and Adam, nothing else, one process a core): what no tuner built on torch can beat here.

    python bench/anytime.py [--task digits|mnist1d] [--budget 120] [--seeds 0,1,2]
        [--tuners lit-tune,lit-tune-pop1,naive,hyperband,ray-asha] [--marks 15,30,60,120]
    (a lit-tune variant: --tuners "lit-tune:--pruner hyperband --population 8,hyperband")
    python bench/anytime.py --task mnist1d --floor    (only the floors, ~2 minutes)

Run it on an otherwise idle machine; it prints the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TASKS = {  # recipe, epochs a trial trains, the space (lr × weight decay, as the issue measured)
    "digits": (ROOT / "recipes" / "digits" / "mlp.yaml", 30),
    "mnist1d": (ROOT / "recipes" / "mnist1d" / "mlp.yaml", 30),
}
SPACE = {
    "metric": "val_acc",
    "direction": "maximize",
    "params": {"model.lr": "log[1.0e-4, 1.0e-1]", "model.weight_decay": "log[1.0e-6, 1.0e-1]"},
}
LR, WD = (1e-4, 1e-1), (1e-6, 1e-1)
TUNERS = (
    "lit-tune",
    "lit-tune-pbt",
    "lit-tune-pop1",
    "naive",
    "hyperband",
    "ray-asha",
    "ray-pbt",
)


# -- the tuners -------------------------------------------------------------------------------


def _recipe(task: str) -> dict:
    path, epochs = TASKS[task]
    recipe = yaml.safe_load(path.read_text())
    recipe["trainer"]["max_epochs"] = epochs
    recipe["trainer"]["accelerator"] = "cpu"
    return recipe


def _lit_tune_command(task: str, seed: int, budget: float, folder: Path, *extra: str) -> list[str]:
    (folder / "recipe.yaml").write_text(yaml.safe_dump(_recipe(task)))
    (folder / "space.yaml").write_text(yaml.safe_dump(SPACE))
    return [
        sys.executable,
        "-m",
        "tuning.cli",
        "run",
        "--recipe",
        "recipe.yaml",
        "--space",
        "space.yaml",
        "--study",
        "s",
        "--n-trials",
        "100000",
        "--seed",
        str(seed),
        "--timeout",
        str(budget),
        "--accelerator",
        "cpu",
        *extra,
    ]


def _lit_tune_events(folder: Path, t0: float, epochs: int) -> tuple[list[dict], float | None]:
    """Trial ends from the study (Optuna stores when each trial was told), and the share of
    the populations' slot-epochs spent on live members."""
    import optuna

    db, journal = folder / "runs" / "s" / "study.db", folder / "runs" / "s" / "journal.log"
    if db.exists():
        storage = f"sqlite:///file:{db}?mode=ro&uri=true"
    elif journal.exists():  # --n-workers
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal))
        )
    else:
        return [], None
    study = optuna.load_study(study_name="s", storage=storage)
    events, populations = [], {}
    for trial in study.get_trials(deepcopy=False):
        curve = len(trial.intermediate_values)
        # A PBT trial's curve starts with its parent's: its own epochs begin where it took over.
        trained = curve - trial.user_attrs.get("pbt", {}).get("epoch", 0)
        done = trial.datetime_complete.timestamp() - t0 if trial.datetime_complete else math.inf
        full = trial.state.name == "COMPLETE" and curve >= epochs
        events.append({"t": done, "epochs": trained, "value": trial.value if full else None})
        if "population" in trial.user_attrs:
            where = trial.user_attrs["population"]
            first = where["epoch_joined"] == 0 and "pbt" not in trial.user_attrs
            populations.setdefault(where["first_trial"], []).append(
                (first, where["epoch_joined"] + curve, trained)
            )
    slots = used = 0
    for members in populations.values():  # its slots: the members it started with
        slots += sum(first for first, _, _ in members) * max(end for _, end, _ in members)
        used += sum(own for _, _, own in members)
    return events, (used / slots if slots else None)


def _plain_data(task: str):
    """The recipe's training and validation tensors, through lit_optim's data module (the
    same split every tuner sees)."""
    from lit_optim import ClassificationData

    data = _recipe(task)["data"]
    with warnings.catch_warnings():  # one batch of everything is what is wanted here
        warnings.simplefilter("ignore")
        whole = ClassificationData(**{**data, "batch_size": 10**9})
        whole.setup()
    ((x, y),) = list(whole.train_dataloader())
    ((vx, vy),) = list(whole.val_dataloader())
    return x, y, vx, vy, whole.input_shape, whole.num_classes


class _PlainRun:
    """The recipe's run in a plain PyTorch loop, an epoch at a time: its network, optimizer,
    schedule, batch size and epochs, on the same data split. ``state`` / ``load`` are what a
    Ray trainable checkpoints (PBT copies them between trials)."""

    def __init__(self, task: str, data, lr: float, weight_decay: float, seed: int) -> None:
        import torch

        from lit_optim.training.models import build_model

        recipe = _recipe(task)
        model, self.epochs = recipe["model"], recipe["trainer"]["max_epochs"]
        self.x, self.y, self.vx, self.vy, shape, classes = data
        self.batch = recipe["data"]["batch_size"]
        torch.manual_seed(seed)
        self.net = build_model(
            model.get("network", "mlp"), shape, classes, **(model.get("network_kwargs") or {})
        )
        optimizer = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
        cls = optimizer[model.get("optimizer", "adam")]
        self.opt = cls(self.net.parameters(), lr=lr, weight_decay=weight_decay)
        steps = math.ceil(len(self.y) / self.batch)
        self.sched = (
            torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=self.epochs * steps)
            if model.get("scheduler") == "cosine"
            else None
        )
        self.epoch = 0

    def train_epoch(self) -> float:
        """One epoch; the validation accuracy after it."""
        import torch

        self.net.train()
        for idx in torch.randperm(len(self.y)).split(self.batch):
            loss = torch.nn.functional.cross_entropy(self.net(self.x[idx]), self.y[idx])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            if self.sched is not None:
                self.sched.step()
        self.epoch += 1
        self.net.eval()
        with torch.no_grad():
            return float((self.net(self.vx).argmax(-1) == self.vy).float().mean())

    def state(self) -> dict:
        return {
            "net": self.net.state_dict(),
            "opt": self.opt.state_dict(),
            "sched": None if self.sched is None else self.sched.state_dict(),
            "epoch": self.epoch,
        }

    def load(self, state: dict, lr: float, weight_decay: float) -> None:
        """Take a checkpoint's state, then this trial's lr and weight decay (PBT explored
        them): the schedule goes on from its position, rescaled to the new lr."""
        from lit_optim.catalog.rescale import rescale_hyperparameters

        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])
        if self.sched is not None:
            self.sched.load_state_dict(state["sched"])
        self.epoch = state["epoch"]
        group = self.opt.param_groups[0]
        base = group.get("initial_lr", group["lr"])
        rescale_hyperparameters(
            self.opt,
            [] if self.sched is None else [self.sched],
            lr=lr / base,
            weight_decay=weight_decay / group["weight_decay"] if group["weight_decay"] else 1.0,
        )


def _plain_trial(task: str, data, lr: float, weight_decay: float, seed: int, report) -> float:
    """The recipe's run in a plain PyTorch loop: ``report(epoch, val_acc)`` after each epoch
    returns True to stop (pruned)."""
    run = _PlainRun(task, data, lr, weight_decay, seed)
    acc = 0.0
    for epoch in range(run.epochs):
        acc = run.train_epoch()
        if not math.isfinite(acc) or report(epoch, acc):
            return acc
    return acc


class _Log:
    """Events a peer writes as it goes (a killed peer keeps what it wrote)."""

    def __init__(self, path: Path, t0: float) -> None:
        self.file, self.t0 = path.open("a", buffering=1), t0

    def epoch(self) -> None:
        self.file.write(json.dumps({"t": time.time() - self.t0, "epochs": 1, "value": None}) + "\n")

    def final(self, value: float) -> None:
        self.file.write(
            json.dumps({"t": time.time() - self.t0, "epochs": 0, "value": value}) + "\n"
        )


def run_hyperband(task: str, seed: int, budget: float, log: _Log) -> None:
    import optuna
    import torch

    torch.set_num_threads(1)
    data = _plain_data(task)
    epochs = TASKS[task][1]

    def objective(trial):
        lr = trial.suggest_float("lr", *LR, log=True)
        wd = trial.suggest_float("wd", *WD, log=True)

        def report(epoch, acc):
            log.epoch()
            trial.report(acc, epoch)
            return trial.should_prune()

        acc = _plain_trial(task, data, lr, wd, seed, report)
        if trial.should_prune():
            raise optuna.TrialPruned()
        log.final(acc)
        return acc

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(max_resource=epochs),
    )
    study.optimize(objective, timeout=budget)


def run_naive(task: str, seed: int, budget: float, log: _Log) -> None:
    import lightning as L
    import optuna
    from optuna_integration import PyTorchLightningPruningCallback

    from lit_optim import ClassificationData, ClassificationTask

    recipe = _recipe(task)
    model = {k: v for k, v in recipe["model"].items() if k not in ("lr", "weight_decay")}

    class Epochs(L.Callback):
        def on_validation_end(self, trainer, pl_module):
            if not trainer.sanity_checking:
                log.epoch()

    def objective(trial):
        lr = trial.suggest_float("lr", *LR, log=True)
        wd = trial.suggest_float("wd", *WD, log=True)
        L.seed_everything(seed, verbose=False)
        data = ClassificationData(**recipe["data"])
        task_ = ClassificationTask(
            data.input_shape, data.num_classes, lr=lr, weight_decay=wd, **model
        )
        trainer = L.Trainer(
            max_epochs=recipe["trainer"]["max_epochs"],
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=[Epochs(), PyTorchLightningPruningCallback(trial, "val_acc")],
        )
        trainer.fit(task_, datamodule=data)
        acc = float(trainer.callback_metrics["val_acc"])
        log.final(acc)
        return acc

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(),
    )
    study.optimize(objective, timeout=budget)


def run_ray_asha(task: str, seed: int, budget: float, log: _Log) -> None:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    epochs = TASKS[task][1]
    cores = os.cpu_count() or 1
    ray.init(num_cpus=cores, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    path, t0 = log.file.name, log.t0  # the trainable is pickled: no open file in it

    def trainable(config, data):
        import torch

        torch.set_num_threads(1)
        inner = _Log(Path(path), t0)

        def report(epoch, acc):
            inner.epoch()
            if epoch + 1 == epochs:  # ASHA ends the trial inside its last report
                inner.final(acc)
            tune.report({"val_acc": acc, "epoch": epoch + 1})
            return False

        _plain_trial(task, data, config["lr"], config["wd"], seed, report)

    space = {"lr": tune.loguniform(*LR), "wd": tune.loguniform(*WD)}
    # As a careful Ray user writes it: the data once in the object store, actors reused.
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, data=_plain_data(task)), {"cpu": 1}),
        param_space=space,
        tune_config=tune.TuneConfig(
            metric="val_acc",
            mode="max",
            num_samples=-1,
            time_budget_s=budget,
            scheduler=ASHAScheduler(
                time_attr="epoch", max_t=epochs, grace_period=1, reduction_factor=4
            ),
            search_alg=OptunaSearch(seed=seed),
            max_concurrent_trials=cores,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(verbose=0, storage_path=str(Path(path).parent / "ray")),
    )
    tuner.fit()


# Ray's PBT examples use populations of 4-8; 8 is what the issue measured.
RAY_PBT_POPULATION = 8


def run_ray_pbt(task: str, seed: int, budget: float, log: _Log) -> None:
    """Ray Tune's PopulationBasedTraining over the same plain loop, as its docs write it: a
    trainable that checkpoints every interval and restores from ``tune.get_checkpoint()``
    (PBT's exploit copies checkpoints between trials), explores lr and weight decay with
    Ray's defaults as lit-tune's PBT does (quantile 0.25, resample probability 0.25, ×0.8 /
    ×1.2), the same interval (a sixth of the run), one trial per core, one thread each."""
    import ray
    import torch
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining

    epochs = TASKS[task][1]
    interval = max(1, epochs // 6)  # lit-tune's default
    cores = os.cpu_count() or 1
    ray.init(num_cpus=cores, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    path, t0 = log.file.name, log.t0

    def trainable(config, data):
        torch.set_num_threads(1)
        inner = _Log(Path(path), t0)
        run = _PlainRun(task, data, config["lr"], config["wd"], seed)
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as folder:
                run.load(torch.load(Path(folder) / "run.pt"), config["lr"], config["wd"])
        while run.epoch < epochs:
            acc = run.train_epoch()
            inner.epoch()
            if run.epoch == epochs:
                inner.final(acc)
            metrics = {"val_acc": acc, "epoch": run.epoch}
            if run.epoch % interval and run.epoch < epochs:
                tune.report(metrics)
                continue
            with tempfile.TemporaryDirectory() as folder:
                torch.save(run.state(), Path(folder) / "run.pt")
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    pbt = PopulationBasedTraining(
        time_attr="epoch",
        perturbation_interval=interval,
        hyperparam_mutations={"lr": tune.loguniform(*LR), "wd": tune.loguniform(*WD)},
        quantile_fraction=0.25,
        resample_probability=0.25,
    )
    random.seed(seed)  # PBT's exploits and explores draw from Python's generator
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, data=_plain_data(task)), {"cpu": 1}),
        param_space={"lr": tune.loguniform(*LR), "wd": tune.loguniform(*WD)},
        tune_config=tune.TuneConfig(
            metric="val_acc",
            mode="max",
            num_samples=RAY_PBT_POPULATION,
            time_budget_s=budget,
            scheduler=pbt,
            max_concurrent_trials=cores,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(verbose=0, storage_path=str(Path(path).parent / "ray")),
    )
    tuner.fit()


PEERS = {
    "hyperband": run_hyperband,
    "naive": run_naive,
    "ray-asha": run_ray_asha,
    "ray-pbt": run_ray_pbt,
}


# -- one run of one tuner ---------------------------------------------------------------------


def _run_tuner(tuner: str, task: str, seed: int, budget: float) -> dict:
    epochs = TASKS[task][1]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.time()
        if tuner.startswith("lit-tune"):
            # lit-tune-pop1, or a variant: "lit-tune:--pruner hyperband --population 8"
            extra = {
                "lit-tune-pop1": ("--population", "1"),
                "lit-tune-pbt": ("--algorithm", "pbt"),
            }.get(tuner, tuple(tuner.partition(":")[2].split()))
            command = _lit_tune_command(task, seed, budget, folder, *extra)
        else:
            command = [
                sys.executable,
                __file__,
                "--peer",
                tuner,
                "--task",
                task,
                "--seed",
                str(seed),
                "--budget",
                str(budget),
                "--t0",
                repr(t0),
                "--log",
                str(folder / "events.jsonl"),
            ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            proc.wait(timeout=max(0.0, t0 + budget - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        with __import__("contextlib").suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # Ray's workers and raylet
        err = proc.stderr.read()
        if tuner.startswith("lit-tune"):
            events, utilization = _lit_tune_events(folder, t0, epochs)
        else:
            log = folder / "events.jsonl"
            events = (
                [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
            )
            utilization = None
        if not events:
            raise RuntimeError(f"{tuner} recorded nothing; its stderr ends: {err[-2000:]}")
    in_budget = [e for e in events if e["t"] <= budget]
    # lit-tune's epochs come with their trial's end: a trial stopped by the budget counts too
    trained = sum(e["epochs"] for e in (events if tuner.startswith("lit-tune") else in_budget))
    return {"events": in_budget, "epochs": trained, "utilization": utilization}


def _best_by(events: list[dict], mark: float) -> float | None:
    values = [e["value"] for e in events if e["value"] is not None and e["t"] <= mark]
    return max(values) if values else None


def _time_to(events: list[dict], target: float | None) -> float | None:
    times = [
        e["t"]
        for e in events
        if e["value"] is not None and target is not None and e["value"] >= target - 1e-9
    ]
    return min(times) if times else None


def _median(values):
    known = [v for v in values if v is not None]
    return statistics.median(known) if len(known) == len(values) and known else None


def _gemm_floor(budget: float, task: str) -> float:
    """Epochs the recipe's arithmetic allows in ``budget`` on every core, at the one-thread
    rate of a plain matmul of the network's widest layer (forward + backward ≈ 3 × forward)."""
    import torch

    from lit_optim.training.models import build_model

    x, y, _, _, shape, classes = _plain_data(task)
    recipe = _recipe(task)
    net = build_model(
        recipe["model"].get("network", "mlp"),
        shape,
        classes,
        **(recipe["model"].get("network_kwargs") or {}),
    )
    flops = 3 * 2 * sum(p.numel() for p in net.parameters() if p.ndim > 1) * len(y)
    torch.set_num_threads(1)
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < 1.0:
        a @ b
        n += 1
    rate = 2 * 512**3 * n / (time.perf_counter() - start)
    return budget * (os.cpu_count() or 1) * rate / flops


def _bare_population_rate(task: str, members: int, seconds: float, fused: bool) -> float:
    """Member-epochs a second of the bare minimum a population of the recipe's MLP must do
    on one thread: ``members`` MLPs stacked [N, in, out], one batched matmul a layer, one
    backward, Adam with each member's own lr and weight decay as tensor arithmetic (``fused``:
    torch's fused Adam with one lr, cheaper than the job; an optimistic floor), the recipe's
    batch size, a validation pass each epoch. No Lightning, no Optuna, no schedule, no records:
    what no tuner built on torch can beat with these shapes on this CPU."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    x, y, vx, vy, shape, classes = _plain_data(task)
    recipe = _recipe(task)
    widths = [math.prod(shape), *recipe["model"]["network_kwargs"]["hidden_dims"], classes]
    weights = [
        (torch.randn(members, a, b) / math.sqrt(a)).requires_grad_()
        for a, b in zip(widths, widths[1:])
    ]
    biases = [torch.zeros(members, 1, b, requires_grad=True) for b in widths[1:]]
    params = weights + biases
    lr = torch.logspace(-4, -1, members).view(members, 1, 1)
    decay = torch.logspace(-6, -1, members).view(members, 1, 1)
    if fused:
        opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    else:
        moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    batch, flat, vflat = recipe["data"]["batch_size"], x.flatten(1), vx.flatten(1)

    def forward(h):
        h = h.expand(members, *h.shape)
        for i, (w, b) in enumerate(zip(weights, biases)):
            h = torch.baddbmm(b, h, w)
            if i < len(weights) - 1:
                h = F.relu(h)
        return h

    epochs, step, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for idx in torch.randperm(len(y)).split(batch):
            out = forward(flat[idx])
            loss = F.cross_entropy(out.flatten(0, 1), y[idx].repeat(members), reduction="sum")
            (loss / len(idx)).backward()
            step += 1
            with torch.no_grad():
                if fused:
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    continue
                for p, (m, v) in zip(params, moments):
                    g = p.grad + decay * p  # every tensor is [N, …, …]: decay is [N, 1, 1]
                    m.lerp_(g, 0.1)
                    v.mul_(0.999).addcmul_(g, g, value=0.001)
                    denom = (v / (1 - 0.999**step)).sqrt_().add_(1e-8)
                    p.sub_(lr / (1 - 0.9**step) * m / denom)
                    p.grad = None
        with torch.no_grad():
            (forward(vflat).argmax(-1) == vy).float().mean(-1)
        epochs += members
    return epochs / (time.perf_counter() - start)


def _bare_floor(budget: float, task: str, fused: bool, members: int = 32) -> float:
    """Epochs in ``budget`` of ``_bare_population_rate`` run on every core at once (one
    process a core, as lit-tune runs them), so the cores share memory bandwidth as a study's
    workers do."""
    cores = os.cpu_count() or 1
    command = [
        sys.executable,
        __file__,
        "--task",
        task,
        "--bare",
        str(members),
        "--fused" if fused else "--no-fused",
    ]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(cores)]
    rates = [float(p.communicate()[0].split()[-1]) for p in procs]
    return budget * sum(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="digits", choices=sorted(TASKS))
    parser.add_argument("--budget", type=float, default=120.0)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--tuners",
        default=",".join(TUNERS),
        help="comma-separated; a lit-tune variant as 'lit-tune:<its flags>'",
    )
    parser.add_argument("--marks", default="15,30,60,120")
    parser.add_argument("--peer", choices=sorted(PEERS), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    parser.add_argument(
        "--floor",
        action="store_true",
        help="only measure the floors (arithmetic and a bare vectorized loop), no tuner",
    )
    parser.add_argument("--bare", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--fused", action=argparse.BooleanOptionalAction, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:  # one core's bare vectorized loop, in its own process
        print(_bare_population_rate(args.task, args.bare, 10.0, bool(args.fused)))
        return
    if args.peer:  # one peer tuner, in its own process
        PEERS[args.peer](args.task, args.seed, args.budget, _Log(Path(args.log), args.t0))
        return
    if args.floor:
        _print_floors(args.budget, args.task)
        return
    tuners = args.tuners.split(",")
    ray_tuners = [t for t in tuners if t.startswith("ray-")]
    if ray_tuners:
        try:
            import ray.tune  # noqa: F401
        except ImportError:
            print(
                f"ray[tune] is not installed: {', '.join(ray_tuners)} left out "
                "(pip install 'ray[tune]')"
            )
            tuners = [t for t in tuners if t not in ray_tuners]
    seeds = [int(s) for s in args.seeds.split(",")]
    marks = [float(m) for m in args.marks.split(",")]
    print(
        f"anytime, {args.task}, {args.budget:g} s a tuner, seeds {seeds}, {os.cpu_count()} "
        f"cores, load {os.getloadavg()[0]:.2f} at start"
    )
    results = {tuner: [] for tuner in tuners}
    for seed in seeds:  # interleaved: a change of load hits every tuner alike
        for tuner in tuners:
            results[tuner].append(_run_tuner(tuner, args.task, seed, args.budget))
            r = results[tuner][-1]
            print(
                f"  seed {seed} {tuner:>24}: {r['epochs']:6d} epochs, best "
                f"{_best_by(r['events'], args.budget)}, load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    reference = (
        "ray-asha" if "ray-asha" in results else "hyperband" if "hyperband" in results else None
    )
    targets = (
        [_best_by(r["events"], args.budget) for r in results[reference]]
        if reference
        else [None] * len(seeds)
    )
    header = " | ".join(f"best @{m:g}s" for m in marks)
    print(
        f"\nmedian of {len(seeds)} seeds; target: the best {reference} reached in "
        f"{args.budget:g} s, per seed ({targets})"
    )
    print(f"| tuner | epochs | {header} | time to target | slot use |")
    print("| --- | --- |" + " --- |" * len(marks) + " --- | --- |")
    for tuner, runs in results.items():
        best = [_median([_best_by(r["events"], m) for r in runs]) for m in marks]
        reach = [_time_to(r["events"], t) for r, t in zip(runs, targets)]
        each = " / ".join("—" if t is None else f"{t:.0f}" for t in reach)
        median_reach = _median(reach)
        use = _median([r["utilization"] for r in runs])
        print(
            f"| {tuner} | {_median([r['epochs'] for r in runs]):.0f} | "
            + " | ".join("—" if b is None else f"{b:.4f}" for b in best)
            + f" | {'—' if median_reach is None else f'{median_reach:.0f} s'} ({each} s)"
            + f" | {'—' if use is None else f'{use:.0%}'} |"
        )
    print()
    _print_floors(args.budget, args.task)


def _print_floors(budget: float, task: str) -> None:
    load = os.getloadavg()[0]
    cores = os.cpu_count()
    print(
        f"arithmetic floor: {_gemm_floor(budget, task):,.0f} epochs in {budget:g} s on "
        f"{cores} cores (one-thread 512² matmul rate)"
    )
    for members in (16, 32, 64):
        own, fused = (
            _bare_floor(budget, task, False, members),
            _bare_floor(budget, task, True, members),
        )
        print(
            f"bare vectorized loop, {members} members a core: {own:,.0f} epochs in {budget:g} s "
            f"(each member's lr and weight decay), {fused:,.0f} (torch's fused Adam, one lr)"
        )
    print(f"load {load:.2f} → {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
