"""The bad-input table: 150+ mistakes across `lit-optim`, `lit-tune` and the Python API.

Each command case must end with exit status 2, exactly one `error:` line on stderr that names
the option as the user wrote it, no traceback, and the working folder (which holds a finished
study and a checkpoint) unchanged byte for byte. Each API case must raise a LitOptimError whose
message is one line naming the argument. The expected fragments are written here from the
options' documented domains, not copied from the code's messages.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
import yaml

from lit_optim import OPTIMIZERS, LitOptimError
from lit_optim.cli.main import main as lit_optim
from support import ROOT
from tuning.cli import main as lit_tune

DIGITS = str(ROOT / "recipes" / "digits" / "mlp.yaml")
FIT = ["fit", "--config", DIGITS]
RUN = ["run", "--recipe", "recipe.yaml", "--space", "space.yaml"]

MOMENTUM = [n for n in OPTIMIZERS.names() if OPTIMIZERS.get(n).has_momentum]
BETAS = [n for n in OPTIMIZERS.names() if OPTIMIZERS.get(n).has_betas]


def _kw(**kwargs) -> str:
    return json.dumps(kwargs)


# (command, arguments, a fragment the one error line must hold: the option, and its domain)
LIT_OPTIM: list[tuple[list[str], str]] = [
    # optimizer values outside their domain: the option's name and its range
    *[
        (
            ["--model.optimizer", n, "--model.optimizer_kwargs", _kw(momentum=m)],
            f"optimizer '{n}' momentum must be in [0, 1)",
        )
        for n in MOMENTUM
        for m in (1.0, 1.5, -0.1)
    ],
    *[
        (
            ["--model.optimizer", n, "--model.optimizer_kwargs", _kw(betas=b)],
            f"optimizer '{n}' betas",
        )
        for n in BETAS
        for b in ([0.9], [0.9, 0.99, 0.5], [1.0, 0.9])
    ],
    (["--model.optimizer", "sgd", "--model.optimizer_kwargs", _kw(dampening=2)], "dampening"),
    (["--model.optimizer", "lookahead", "--model.optimizer_kwargs", _kw(k=0)], "k must be"),
    (
        ["--model.optimizer", "lookahead", "--model.optimizer_kwargs", _kw(base="lookahead")],
        "lookahead cannot wrap itself",
    ),
    (
        ["--model.optimizer", "sgd", "--model.optimizer_kwargs", _kw(betas=[0.9, 0.99])],
        "does not take 'betas'",
    ),
    # scheduler values outside their domain
    *[
        (
            ["--model.scheduler", s, "--model.scheduler_kwargs", _kw(**{k: v})],
            f"scheduler '{s}' {k}",
        )
        for s, k, v in [
            ("cyclic", "step_size_up", 0),
            ("cyclic", "step_size_up", -4),
            ("cyclic", "base_lr", -1),
            ("cyclic", "mode", "triangle"),
            ("cyclic", "gamma", 0),
            ("cyclic", "gamma", -2),
            ("plateau", "factor", 0),
            ("plateau", "factor", 1),
            ("plateau", "factor", 2),
            ("plateau", "mode", "maxx"),
            ("plateau", "threshold_mode", "relative"),
            ("plateau", "patience", -1),
            ("plateau", "cooldown", -1),
            ("plateau", "threshold", -0.1),
            ("onecycle", "div_factor", 0),
            ("onecycle", "final_div_factor", 0),
            ("onecycle", "pct_start", 0),
            ("onecycle", "pct_start", 1),
            ("onecycle", "anneal_strategy", "cosine"),
            ("step", "step_size", 0),
            ("step", "gamma", 0),
            ("step", "gamma", -1),
            ("exponential", "gamma", 0),
            ("multistep", "milestones", [3, 1]),
            ("multistep", "milestones", "abc"),
            ("cosine", "eta_min", -1),
            ("cosine_restarts", "T_0", 0),
            ("cosine_restarts", "T_mult", 0),
        ]
    ],
    (
        ["--model.scheduler", "cyclic", "--model.scheduler_kwargs", _kw(mode="exp_range", gamma=0)],
        "scheduler 'cyclic' gamma",
    ),
    (["--model.scheduler", "multistep"], "needs 'milestones'"),
    (["--model.scheduler_kwargs", _kw(warmup_steps=-3)], "warmup_steps"),
    (
        ["--model.scheduler_kwargs", _kw(warmup_start_factor=2, warmup_steps=3)],
        "warmup_start_factor",
    ),
    (
        ["--model.scheduler", "cosine", "--model.scheduler_kwargs", _kw(gamma=0.5)],
        "does not take 'gamma'",
    ),
    (
        ["--model.scheduler", "plateau", "--model.scheduler_kwargs", _kw(monitor="val_accuracy")],
        "val_accuracy",
    ),
    # the model, the data
    (["--model.lr", "0"], "lr"),
    (["--model.lr", "-1"], "lr"),
    (["--model.lr", "nan"], "lr"),
    (["--model.lr", "inf"], "lr"),
    (["--model.lr", "abc"], "lr"),
    (["--model.weight_decay", "-1"], "weight_decay"),
    (["--model.weight_decay", "nan"], "weight_decay"),
    (["--model.optimizer", "adamm"], "did you mean 'adam'"),
    (["--model.scheduler", "cosin"], "did you mean 'cosine'"),
    (["--model.network", "mpl"], "did you mean 'mlp'"),
    (["--model.network_kwargs", _kw(hidden_dims="abc")], "hidden_dims"),
    (["--model.network_kwargs", _kw(hidden_dims=[0])], "hidden_dims"),
    (["--model.network_kwargs", _kw(width=3)], "width"),
    (["--model.param_groups", '[{"params": "net.*", "lr": -1}]'], "param_groups[0].lr"),
    (["--model.param_groups", '[{"params": "nope.*", "lr": 0.1}]'], "nope.*"),
    (["--model.lr_scaling", "linear"], "base_batch_size"),
    (["--model.lr_scaling", "cubic"], "lr_scaling"),
    (["--model.lrr", "0.1"], "did you mean 'lr'"),
    (["--trainer.devices", "0"], "trainer.devices is a count >= 1, a list of device indices"),
    (["--trainer.max_epocs", "2"], "--trainer.max_epocs 2; did you mean 'trainer.max_epochs'?"),
    (["--trainer.max_epoch", "2"], "did you mean 'trainer.max_epochs'?"),
    (["--trainr.max_epochs", "2"], "did you mean 'trainer'?"),
    (["--model.optimizer_kwargs", _kw(lr=0.1)], "set 'lr' with model.lr"),
    (
        ["--model.optimizer_kwargs", _kw(weight_decay=0.1)],
        "set 'weight_decay' with model.weight_decay",
    ),
    (
        ["--model.optimizer", "rmsprop", "--model.optimizer_kwargs", _kw(alpha=1.5)],
        "optimizer 'rmsprop' alpha must be in [0, 1)",
    ),
    (
        ["--model.optimizer", "adadelta", "--model.optimizer_kwargs", _kw(rho=1.5)],
        "optimizer 'adadelta' rho must be in [0, 1]",
    ),
    (
        ["--model.optimizer", "adagrad", "--model.optimizer_kwargs", _kw(lr_decay=-1)],
        "optimizer 'adagrad' lr_decay must be a finite number ≥ 0",
    ),
    (["--model.optimizer_kwargs", _kw(eps=-1)], "optimizer 'adam' eps must be a finite number ≥ 0"),
    (
        [
            "--trainer.callbacks+=lit_optim.callbacks.GradientClipper",
            "--trainer.callbacks.mode",
            "norm",
            "--trainer.callbacks.clip_value",
            "1.0",
        ],
        "clip_value applies to mode 'value' only",
    ),
    (["--data.dataset", "digitz"], "did you mean 'digits'"),
    (["--data.batch_size", "0"], "batch_size"),
    (["--data.batch_size", "-3"], "batch_size"),
    (["--data.val_fraction", "1.5"], "val_fraction"),
    (["--data.val_fraction", "-0.1"], "val_fraction"),
    *[
        (
            ["--data.dataset", "synthetic", "--data.dataset_kwargs", _kw(**{k: v})],
            f"dataset 'synthetic' {k}",
        )
        for k, v in [
            ("num_classes", 0),
            ("num_samples", -5),
            ("noise", -1),
            ("num_features", 0),
            ("input_shape", []),
            ("num_test_samples", 0),
        ]
    ],
    (["--data.dataset", "mnist"], "--data.download true"),
    *[
        (
            ["--data.dataset", "mnist1d", "--data.dataset_kwargs", _kw(**{k: v})],
            f"dataset 'mnist1d' {k}",
        )
        for k, v in [
            ("num_samples", 0),
            ("train_split", 1.0),
            ("train_split", 0),
            ("padding", [60, 36]),
            ("padding", 36),
            ("final_seq_length", 0),
            ("iid_noise_scale", -1),
            ("seed", -1),
            ("shuffle_seq", 2),
        ]
    ],
    (
        ["--data.dataset", "mnist1d", "--data.dataset_kwargs", _kw(num_sample=100)],
        "does not take 'num_sample'; did you mean 'num_samples'",
    ),
    (
        ["--data.dataset", "mnist1d", "--data.dataset_kwargs", _kw(num_samples=9)],
        "leaves an empty train or test split",
    ),
    (
        ["--data.dataset", "mnist1d", "--model.network", "cnn", "--model.network_kwargs", "{}"],
        "cnn needs image input",
    ),
    (
        [
            "--data.dataset",
            "mnist1d",
            "--model.network",
            "cnn1d",
            "--model.network_kwargs",
            _kw(channels=[4, 4, 4, 4, 4, 4, 4]),
        ],
        "cnn1d needs one kernel size per stage",
    ),
    (
        [
            "--data.dataset",
            "mnist1d",
            "--model.network",
            "gru",
            "--model.network_kwargs",
            _kw(hidden_size=0),
        ],
        "hidden_size must be an integer >= 1",
    ),
    # the trainer
    (["--trainer.max_epochs", "0"], "trainer.max_epochs"),
    (["--trainer.max_epochs", "-5"], "max_epochs"),
    (["--trainer.accumulate_grad_batches", "0"], "trainer.accumulate_grad_batches"),
    (["--trainer.log_every_n_steps", "0"], "trainer.log_every_n_steps"),
    (["--trainer.check_val_every_n_epoch", "0"], "trainer.check_val_every_n_epoch"),
    (["--trainer.min_epochs", "-1"], "trainer.min_epochs"),
    (["--trainer.val_check_interval", "1.5"], "trainer.val_check_interval"),
    (["--trainer.gradient_clip_val", "-1"], "trainer.gradient_clip_val"),
    (
        [
            "--trainer.gradient_clip_val",
            "1",
            "--trainer.callbacks+=lit_optim.callbacks.GradientClipper",
        ],
        "trainer.gradient_clip_val and a GradientClipper",
    ),
    (["--trainer.max_epoch", "3"], "--trainer.max_epoch"),  # no abbreviation taken as another flag
    (["--trainer.strategy", "dpp"], "strategy"),
    (["--trainer.precision", "13"], "trainer.precision"),
    (
        [
            "--trainer.callbacks+=lit_optim.callbacks.GradientClipper",
            "--trainer.callbacks.percentile",
            "150",
        ],
        "percentile",
    ),
    (
        [
            "--trainer.callbacks+=lit_optim.callbacks.NonFiniteGuard",
            "--trainer.callbacks.action",
            "explode",
        ],
        "action",
    ),
    (["--model", "no_such_pkg.Module"], "no_such_pkg"),
    (["--objective.metric", "valid/top1"], "objective.metric 'valid/top1' is never logged"),
    (
        ["--model.optimizer", "lbfgs", "--model.param_groups", '[{"params": "net.*", "lr": 0.1}]'],
        "lbfgs",
    ),
    (["--model.optimizer", "sgd", "--model.optimizer_kwargs", _kw(momentum="high")], "momentum"),
    (["--model.scheduler", "onecycle", "--model.scheduler_kwargs", _kw(warmup_steps=5)], "warmup"),
    (["--objective.metric", "val_acc", "--objective.direction", "up"], "objective.direction"),
]
if not torch.cuda.is_available():
    LIT_OPTIM += [
        (["--trainer.precision", "16-mixed"], "trainer.precision 16-mixed needs a GPU"),
        (["--trainer.accelerator", "gpu"], "gpu"),
    ]

FILES = [  # (file name, bytes, fragment): configs that are not a recipe
    ("binary.yaml", b"\xff\xfe\x00\x81garbage", "--config binary.yaml is not UTF-8"),
    ("empty.yaml", b"# only a comment\n", "--config empty.yaml is empty"),
    (
        "twice.yaml",
        b"trainer:\n  max_epochs: 1\n  max_epochs: 2\n",
        "--config twice.yaml: key 'max_epochs' is given twice (lines 2 and 3)",
    ),
    ("broken.yaml", b"trainer: [1, 2\n", "broken.yaml"),
    ("alist.yaml", b"- 1\n- 2\n", "alist.yaml"),
    ("trainr.yaml", b"trainr:\n  max_epochs: 1\n", "'trainr.max_epochs'; did you mean 'trainer'?"),
    ("seed.yaml", b"sed_everything: 1\n", "did you mean 'seed_everything'?"),
    ("epocs.yaml", b"trainer:\n  max_epocs: 1\n", "did you mean 'trainer.max_epochs'?"),
]

CHECKPOINTS = [  # (args after the subcommand, fragment)
    (["test", "--config", DIGITS], "needs --ckpt_path"),
    (["validate", "--config", DIGITS], "needs --ckpt_path"),
    (["test", "--config", DIGITS, "--ckpt_path", "missing.ckpt"], "missing.ckpt"),
    (["test", "--config", DIGITS, "--ckpt_path", "text.ckpt"], "text.ckpt: not a checkpoint"),
    (
        ["fit", "--config", DIGITS, "--ckpt_path", "other.ckpt"],
        "other.ckpt holds a own_pkg.OtherModule, but the recipe's model is "
        "lit_optim.ClassificationTask",
    ),
    (["test", "--config", DIGITS, "--ckpt_path", "other.ckpt"], "own_pkg.OtherModule"),
]

LIT_TUNE: list[tuple[list[str], str]] = [
    ([*RUN, "--study", "s", "--n-trials", "0"], "n_trials"),
    ([*RUN, "--study", "s", "--n-trials", "abc"], "--n-trials"),
    ([*RUN, "--study", "s", "--n-workers", "0"], "--n-workers"),
    ([*RUN, "--study", "s", "--sampler", "tpee"], "did you mean 'tpe'"),
    ([*RUN, "--study", "s", "--pruner", "medain"], "did you mean 'median'"),
    ([*RUN, "--study", "s", "--heartbeat", "0"], "--heartbeat"),
    ([*RUN, "--study", "s", "--heartbeat", "-1"], "--heartbeat"),
    ([*RUN, "--study", "s", "--heartbeat", "nan"], "--heartbeat"),
    ([*RUN, "--study", "s", "--population", "0"], "--population"),
    ([*RUN, "--study", "s", "--population", "many"], "--population"),
    (
        [*RUN, "--study", "s", "--threads", "0"],
        "--threads: must be auto or an integer >= 1, got '0'",
    ),
    ([*RUN, "--study", "s", "--threads", "two"], "--threads: must be auto or an integer >= 1"),
    (
        [*RUN, "--study", "s", "--population", "100000"],
        "--population 100000 is larger than the budget",
    ),
    ([*RUN, "--study", ""], "--study"),
    ([*RUN, "--study", "a/b"], "--study"),
    ([*RUN, "--study", ".."], "--study"),
    ([*RUN, "--study", "s", "--timeout", "0"], "timeout"),
    ([*RUN, "--study", "s", "--max-failures", "0"], "max_failures"),
    ([*RUN, "--study", "s", "--storage", "foo://bar"], "unknown storage scheme 'foo'"),
    ([*RUN, "--study", "s", "--storage", "x.db"], "looks like a SQLite file"),
    ([*RUN, "--study", "s", "--storage", "sqlite:///mine.db"], "not an Optuna study"),
    ([*RUN, "--study", "s", "--run-dir", "alist.yaml"], "alist.yaml is a file, not a folder"),
    (
        [*RUN, "--study", "s", "--storage", "sqlite:///alist.yaml/s.db"],
        "alist.yaml is a file, not a folder",
    ),
    (
        [*RUN, "--study", "s", "--storage", "sqlite:///alist.yaml/sub/s.db"],
        "alist.yaml is a file, not a folder",
    ),
    ([*RUN, "--study", "s", "--lr-range", "manual"], "--lr-range"),
    ([*RUN, "--study", "s", "--model.lrr", "0.1"], "did you mean 'lr'"),
    ([*RUN, "--study", "s", "--foo", "1"], "--foo"),
    (["run", "--recipe", "missing.yaml", "--space", "space.yaml", "--study", "s"], "missing.yaml"),
    (["run", "--recipe", "recipe.yaml", "--space", "missing.yaml", "--study", "s"], "missing.yaml"),
    (["best", "--study", "nosuch"], "no study 'nosuch'"),
    (["report", "--study", "nosuch"], "no study 'nosuch'"),
    (["delete", "--study", "nosuch"], "no study 'nosuch'"),
    (["best", "--study", "s", "--storage", "sqlite:///missing.db"], "no study database missing.db"),
    (["best", "--study", "s", "--storage", "missing.log"], "no journal file"),
    (["studies", "--run-dir", "nowhere"], "--run-dir nowhere"),
    (["studies", "--storage", "sqlite:///mine.db"], "not an Optuna study"),
    (["compare", "--recipe", "recipe.yaml", "--optimizers", ""], "--optimizers"),
    (["compare", "--recipe", "recipe.yaml", "--optimizers", "sgd,adamm"], "did you mean 'adam'"),
    (["compare", "--recipe", "recipe.yaml", "--optimizers", "sgd", "--budget", "0"], "budget"),
    (["compare", "--recipe", "recipe.yaml", "--optimizers", "sgd", "--seeds", "0"], "seeds"),
    (["compare", "--recipe", "recipe.yaml", "--optimizers", "sgd", "--target", "nan"], "--target"),
    (
        ["compare", "--recipe", "recipe.yaml", "--optimizers", "sgd", "--direction", "up"],
        "--direction",
    ),
    (
        ["compare", "--recipe", "recipe.yaml", "--optimizers", "sgd", "--schedulers", "cosin"],
        "did you mean 'cosine'",
    ),
    (
        ["compare", "--recipe", "recipe.yaml", "--optimizers", "sgd", "--population", "0"],
        "--population",
    ),
    (["compare", "--recipe", "recipe.yaml", "--optimizers", "sgd", "--convex", "cubic"], "cubic"),
    (
        ["compare", "--recipe", "recipe.yaml", "--optimizers", "sgd", "--metric", "valid/top1"],
        "--metric 'valid/top1' is never logged",
    ),
]

SPACES = [  # (space file content, fragment): search spaces that cannot run
    ({"metric": "val_accuracy", "params": {"model.lr": "log[1e-3, 1e-1]"}}, "val_accuracy"),
    (
        {"metric": "val_acc", "direction": "upward", "params": {"model.lr": "log[1e-3, 1e-1]"}},
        "direction",
    ),
    ({"metric": "val_acc", "params": {"model.lrr": "log[1e-3, 1e-1]"}}, "model.lrr"),
    ({"metric": "val_acc", "params": {"model.lr": "log[0, 1]"}}, "model.lr"),
    ({"metric": "val_acc", "params": {"model.lr": "uniform[1, 0]"}}, "model.lr"),
    ({"metric": "val_acc", "params": {"model.lr": "gauss[0, 1]"}}, "model.lr"),
    ({"metric": "val_acc", "params": {"data.batch_size": [32, 0]}}, "data.batch_size"),
    ({"metric": "val_acc", "params": {"model.optimizer": ["sgd", "adamm"]}}, "adamm"),
    (
        {
            "metric": "val_acc",
            "params": {
                "model.optimizer_kwargs.momentum": "uniform[0.5, 1.5]",
                "model.optimizer": ["sgd"],
            },
        },
        "model.optimizer_kwargs.momentum: its range reaches 1.5, which is invalid",
    ),
    ({"metric": "val_acc", "params": {}}, "params"),
    ({"metric": "val_acc"}, "params"),
    ([1, 2], "space.yaml"),
]

API = [  # (call, fragment)
    (lambda m, o, t: __import__("lit_optim").create_optimizer(m, "adamm", lr=0.1), "adamm"),
    *[
        (lambda m, o, t, lr=lr: __import__("lit_optim").create_optimizer(m, "sgd", lr=lr), "lr")
        for lr in (0, -1, float("nan"), float("inf"), True, "0.1")
    ],
    (
        lambda m, o, t: __import__("lit_optim").create_optimizer(m, "sgd", lr=0.1, weight_decay=-1),
        "weight_decay",
    ),
    (
        lambda m, o, t: __import__("lit_optim").create_optimizer(
            m, "adamw", lr=0.1, decay_bias_and_norm="no"
        ),
        "decay_bias_and_norm",
    ),
    (
        lambda m, o, t: __import__("lit_optim").create_optimizer(m, "sgd", lr=0.1, momentum=1.0),
        "momentum",
    ),
    (
        lambda m, o, t: __import__("lit_optim").create_optimizer(m, "adam", lr=0.1, betas=(0.9,)),
        "betas",
    ),
    (
        lambda m, o, t: __import__("lit_optim").create_optimizer(
            m, "lbfgs", lr=0.1, weight_decay=0.1
        ),
        "weight_decay",
    ),
    (
        lambda m, o, t: __import__("lit_optim").create_optimizer(m, "sgd", lr=0.1, lr_scale=0),
        "lr_scale",
    ),
    (
        lambda m, o, t: __import__("lit_optim").create_optimizer(
            list(m.parameters()), "sgd", lr=0.1, param_groups=[{"params": "*", "lr": 1}]
        ),
        "param_groups",
    ),
    (
        lambda m, o, t: __import__("lit_optim").create_optimizer(m, "sgd", lr=0.1, nesterovv=True),
        "nesterovv",
    ),
    (
        lambda m, o, t: __import__("lit_optim").create_optimizer(None, "adam", lr=0.1),
        "the first argument must be a module",
    ),
    (
        lambda m, o, t: __import__("lit_optim").create_scheduler("cosine", o, None),
        "trainer must be the Lightning Trainer",
    ),
    (
        lambda m, o, t: __import__("lit_optim").create_scheduler("cosine", m, t),
        "optimizer must be a torch.optim.Optimizer",
    ),
    (lambda m, o, t: __import__("lit_optim").create_scheduler("cosin", o, t), "cosin"),
    (lambda m, o, t: __import__("lit_optim").create_scheduler("plateau", o, t, factor=0), "factor"),
    (lambda m, o, t: __import__("lit_optim").create_scheduler("plateau", o, t, mode="up"), "mode"),
    (lambda m, o, t: __import__("lit_optim").create_scheduler("step", o, t, gamma=-1), "gamma"),
    (
        lambda m, o, t: __import__("lit_optim").create_scheduler("cyclic", o, t, step_size_up=0),
        "step_size_up",
    ),
    (
        lambda m, o, t: __import__("lit_optim").create_scheduler("onecycle", o, t, div_factor=0),
        "div_factor",
    ),
    (lambda m, o, t: __import__("lit_optim").resolve_objective("valid/top1"), "valid/top1"),
    (lambda m, o, t: __import__("lit_optim").resolve_objective("val_acc", "upward"), "direction"),
    (lambda m, o, t: __import__("lit_optim").ClassificationTask((1, 8, 8), 10, lr=0), "lr"),
    (
        lambda m, o, t: __import__("lit_optim").ClassificationTask(
            (1, 8, 8), 10, optimizer="adamm"
        ),
        "adamm",
    ),
    (
        lambda m, o, t: __import__("lit_optim").ClassificationTask((1, 8, 8), 10, network="mpl"),
        "mpl",
    ),
    (lambda m, o, t: __import__("lit_optim").ClassificationTask((1, 8, 8), 0), "num_classes"),
    (lambda m, o, t: __import__("lit_optim").ClassificationData("digitz"), "digitz"),
    (
        lambda m, o, t: __import__("lit_optim").ClassificationData("digits", batch_size=0),
        "batch_size",
    ),
    (lambda m, o, t: __import__("lit_optim").callbacks.NonFiniteGuard("explode"), "action"),
    (
        lambda m, o, t: __import__("lit_optim").callbacks.GradientClipper(
            mode="adaptive", percentile=0
        ),
        "percentile",
    ),
]


def test_the_table_has_at_least_150_cases():
    count = len(LIT_OPTIM) + len(FILES) + len(CHECKPOINTS) + len(LIT_TUNE) + len(SPACES) + len(API)
    assert count >= 150, count


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder as a user leaves it: a finished study (SQLite and journal), a checkpoint, a
    database of the user's own, and the files the cases name."""
    import sqlite3

    folder = tmp_path_factory.mktemp("bad_input")
    monkey = pytest.MonkeyPatch()
    monkey.chdir(folder)
    monkey.setattr("sys.argv", ["lit-tune"])
    recipe = yaml.safe_load(Path(DIGITS).read_text())
    recipe["trainer"]["max_epochs"] = 1
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (folder / "space.yaml").write_text(
        yaml.safe_dump({"metric": "val_acc", "params": {"model.lr": "log[1e-3, 1e-1]"}})
    )
    for workers in ("1", "2"):
        try:
            lit_tune([*RUN, "--study", f"s{workers}", "--n-trials", "1", "--n-workers", workers])
        except SystemExit as stop:
            assert stop.code == 0
    lit_optim(
        [
            *FIT,
            "--trainer.max_epochs",
            "1",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.default_root_dir",
            "fit",
        ]
    )
    (folder / "text.ckpt").write_text("not a checkpoint\n")
    torch.save(
        {"state_dict": {}, "hyper_parameters": {"_class_path": "own_pkg.OtherModule"}},
        folder / "other.ckpt",
    )
    with sqlite3.connect(folder / "mine.db") as db:
        db.execute("CREATE TABLE measurements (x REAL)")
    db.close()
    for name, data, _ in FILES:
        (folder / name).write_bytes(data)
    yield folder
    monkey.undo()


def _one_line_exit_2(run, args: list[str], fragment: str, folder: Path, capsys, prog: str) -> None:
    before = _snapshot(folder)
    try:
        run(args)
        code = 0
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, (args, code, err[-1500:])
    assert "Traceback" not in err, (args, err[-3000:])
    assert len(errors) == 1 and errors[0].startswith(prog), (args, err[-1500:])
    assert fragment in errors[0], (args, fragment, errors[0])
    assert _snapshot(folder) == before, args  # nothing written, created or removed


@pytest.mark.parametrize(
    ("args", "fragment"), LIT_OPTIM, ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else None
)
def test_lit_optim_fit(workdir, capsys, args, fragment):
    _one_line_exit_2(lit_optim, [*FIT, *args], fragment, workdir, capsys, "lit-optim")


@pytest.mark.parametrize(("name", "data", "fragment"), FILES, ids=[f[0] for f in FILES])
def test_lit_optim_config_files(workdir, capsys, name, data, fragment):
    _one_line_exit_2(lit_optim, [*FIT, "--config", name], fragment, workdir, capsys, "lit-optim")


@pytest.mark.parametrize(
    ("args", "fragment"),
    CHECKPOINTS,
    ids=lambda v: " ".join(v)[-40:] if isinstance(v, list) else None,
)
def test_lit_optim_checkpoints(workdir, capsys, args, fragment):
    _one_line_exit_2(lit_optim, args, fragment, workdir, capsys, "lit-optim")


@pytest.mark.parametrize(
    ("args", "fragment"), LIT_TUNE, ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else None
)
def test_lit_tune(workdir, capsys, args, fragment):
    _one_line_exit_2(lit_tune, args, fragment, workdir, capsys, "lit-tune")


@pytest.mark.parametrize(("space", "fragment"), SPACES, ids=range(len(SPACES)))
def test_lit_tune_spaces(workdir, capsys, space, fragment):
    path = workdir / "space.yaml"
    good = path.read_bytes()
    path.write_text(yaml.safe_dump(space))
    try:
        _one_line_exit_2(
            lit_tune,
            [*RUN, "--study", "fresh", "--n-trials", "2"],
            fragment,
            workdir,
            capsys,
            "lit-tune",
        )
    finally:
        path.write_bytes(good)


@pytest.mark.parametrize(("call", "fragment"), API, ids=range(len(API)))
def test_python_api(call, fragment):
    import lightning as L

    module = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    trainer = L.Trainer(
        max_epochs=2,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    with pytest.raises(LitOptimError) as info:
        call(module, optimizer, trainer)
    message = str(info.value)
    assert "\n" not in message and fragment in message, message
