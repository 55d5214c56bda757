"""Layering: lower layers never import higher ones, and no two modules import each other.

Two checks: a static walk of every ``import`` in ``lit_optim/`` and ``tuning/`` (the whole
graph, deferred imports inside functions included, since a cycle through a function-level
import is still a cycle of concepts), and what a fresh interpreter has loaded after importing a
lower layer (this test process has imported everything already).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from support import ROOT

# Rank of each layer: a module may import its own layer and lower ranks, never higher ones.
# Layers of one rank are siblings and must not import each other either.
LAYERS = {
    "lit_optim.catalog": 0,  # registries, checks, optimizers, schedulers, factory
    "lit_optim.data": 1,
    "lit_optim.callbacks": 1,  # work with any LightningModule
    "lit_optim.training": 2,  # models, the example task, metrics, checkpoints
    "lit_optim.finders": 3,
    "lit_optim.population": 3,
    "lit_optim.lab": 3,
    "lit_optim.cli": 4,
    "lit_optim.testing": 4,
    "tuning.storage": 5,
    "tuning.search": 6,
    "tuning.runner": 7,
    "tuning.reports": 8,
    "tuning.cli": 9,
}


def _layer(module: str) -> str | None:
    return max(
        (name for name in LAYERS if module == name or module.startswith(name + ".")),
        key=len,
        default=None,
    )


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _lazy_exports() -> dict[str, dict[str, str]]:
    """Each package's PEP 562 exports, {package: {name: module}} (``lit_optim``,
    ``lit_optim.data``, ``tuning``): ``from lit_optim import X`` imports X's module when X is
    touched, so it counts as an import of it."""
    exports = {}
    for init in [
        *(ROOT / "lit_optim").rglob("__init__.py"),
        *(ROOT / "tuning").rglob("__init__.py"),
    ]:
        tree = ast.parse(init.read_text())
        assign = next(
            (
                node
                for node in tree.body
                if isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets)
            ),
            None,
        )
        if assign is not None:
            exports[_module_name(init)] = ast.literal_eval(assign.value)
    return exports


LAZY = _lazy_exports()


def _imports(path: Path) -> set[str]:
    """Every project module ``path`` imports (``from a.b import c`` counts ``a.b`` and, when
    ``a.b.c`` is a module, ``a.b.c``; ``from lit_optim import X`` counts X's module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
            lazy = LAZY.get(node.module, {})
            found.update(lazy[alias.name] for alias in node.names if alias.name in lazy)
    return {name for name in found if name.split(".")[0] in ("lit_optim", "tuning")}


def _graph() -> dict[str, set[str]]:
    files = [*sorted((ROOT / "lit_optim").rglob("*.py")), *sorted((ROOT / "tuning").rglob("*.py"))]
    modules = {_module_name(path): path for path in files}
    return {
        name: {m for m in _imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }


GRAPH = _graph()


def test_every_module_belongs_to_a_layer():
    # The package roots hold only lazy exports (lit_optim) or public re-exports (tuning).
    loose = [name for name in GRAPH if _layer(name) is None and name not in ("lit_optim", "tuning")]
    assert not loose, f"modules outside every layer (put each in its layer's package): {loose}"


def test_lower_layers_never_import_higher_ones():
    violations = []
    for module, imported in GRAPH.items():
        own = _layer(module)
        if own is None:
            continue
        for other in imported:
            theirs = _layer(other)
            if theirs is None or theirs == own:
                continue
            if LAYERS[theirs] >= LAYERS[own]:
                violations.append(f"{module} ({own}) imports {other} ({theirs})")
    assert not violations, "\n".join(violations)


def test_no_import_cycle():
    # Depth-first search for a back edge; the cycle found is reported whole.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for other in sorted(GRAPH[module]):
            if state.get(other) == 1:
                return stack[stack.index(other) :] + [other]
            if other not in state and (cycle := visit(other)):
                return cycle
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(GRAPH):
        if module not in state and (cycle := visit(module)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def _public_api() -> dict[str, set[str]]:
    """Each lit_optim package's public names: its ``__all__`` (a list, or its lazy exports')."""
    public = {}
    for init in (ROOT / "lit_optim").rglob("__init__.py"):
        tree = ast.parse(init.read_text())
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                getattr(t, "id", None) == "__all__" for t in node.targets
            ):
                name = _module_name(init)
                public[name] = (
                    set(LAZY[name])
                    if name in LAZY and not isinstance(node.value, ast.List)
                    else set(ast.literal_eval(node.value))
                )
    return public


PUBLIC = _public_api()


def _non_public_imports(source: str) -> list[str]:
    """``source``'s imports of lit_optim that are not its public API: a name from ``lit_optim``
    or one of its packages that the package's ``__all__`` does not list, or a module below a
    package (``lit_optim.cli.lightning_cli``)."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
            bad += [m for m in modules if m.startswith("lit_optim.") and m not in PUBLIC]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "lit_optim":
            public = PUBLIC.get(node.module)
            if public is None:
                bad.append(f"{node.module} (a module, not a package's exports)")
            else:
                bad += [
                    f"{node.module}.{a.name}"
                    for a in node.names
                    if a.name not in public and not a.name.startswith("__")
                ]
    return bad


def test_tuning_uses_only_lit_optims_public_api():
    # lit-tune is a client of lit_optim like a user's script: what it needs, a package
    # exports (lazily); lit_optim's modules can move without touching tuning/.
    bad = [
        f"{path.relative_to(ROOT)}: {b}"
        for path in sorted((ROOT / "tuning").rglob("*.py"))
        for b in _non_public_imports(path.read_text())
    ]
    assert not bad, "\n".join(bad)


def test_the_public_api_check_sees_a_planted_violation():
    planted = (
        "from lit_optim.cli.lightning_cli import cli_objects\n"
        "from lit_optim.catalog import not_exported\nimport lit_optim.training.task\n"
        "from lit_optim.cli import cli_objects\nfrom lit_optim import ConfigError\n"
    )
    assert _non_public_imports(planted) == [
        "lit_optim.cli.lightning_cli (a module, not a package's exports)",
        "lit_optim.catalog.not_exported",
        "lit_optim.training.task",
    ]


def test_the_walk_sees_a_planted_violation(tmp_path):
    # The checks above pass only if the walk finds imports at all: plant one and look.
    planted = tmp_path / "planted.py"
    planted.write_text(
        "def f():\n    from lit_optim.cli.main import main\nimport tuning.runner.study\n"
        "from lit_optim import ClassificationTask\n"
    )
    assert _imports(planted) >= {
        "lit_optim.cli.main",
        "tuning.runner.study",
        "lit_optim.training.task",
    }
    assert "lit_optim.cli.main" in GRAPH["lit_optim.cli"] | GRAPH["lit_optim.cli.__main__"]


def _loaded_after(statement: str) -> set[str]:
    """The modules of interest a fresh interpreter has loaded after ``statement`` (what it
    prints, and a SystemExit from a --help, set aside)."""
    body = "\n".join("    " + line for line in statement.split("; "))
    code = (
        "import contextlib, io, sys\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "  try:\n" + "\n".join("  " + line for line in body.splitlines()) + "\n"
        "  except SystemExit:\n    pass\n"
        "print(' '.join(m for m in sys.modules if m.split('.')[0] in "
        "('lit_optim', 'lightning', 'torchmetrics', 'torchvision', 'torch', 'optuna', "
        "'sqlalchemy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    ("statement", "forbidden"),
    [
        (
            "import lit_optim.callbacks",
            {"lit_optim.training.task", "lit_optim.training.models", "lit_optim.data"},
        ),
        (
            "from lit_optim import create_optimizer, create_scheduler",
            {
                "lit_optim.training.task",
                "lit_optim.training.models",
                "lit_optim.data",
                "lit_optim.cli.main",
            },
        ),
        (
            "import lit_optim.catalog.optimizers, lit_optim.catalog.schedulers, "
            "lit_optim.training.models, lit_optim.data",
            {"lit_optim.training.task", "lit_optim.catalog.factory", "lit_optim.cli.main"},
        ),
        ("import lit_optim", {"lit_optim.training.task", "lit_optim.catalog.optimizers"}),
        # the catalog is torch only: a registry, an optimizer or a schedule costs no Lightning
        # import
        (
            "import lit_optim.catalog.factory, lit_optim.catalog.extra_optimizers, "
            "lit_optim.catalog.extra_schedules; "
            "from lit_optim import OPTIMIZERS, SCHEDULERS, create_optimizer, create_scheduler",
            {"lightning", "torchmetrics", "torchvision"},
        ),
        # lit-optim --version and --help answer before any framework import; list needs torch only
        (
            "from lit_optim.cli.main import main; main(['--version'])",
            {"lightning", "torchmetrics", "torchvision", "lit_optim.cli.lightning_cli"},
        ),
        (
            "from lit_optim.cli.main import main; main(['--help'])",
            {"lightning", "torch", "torchmetrics", "torchvision", "lit_optim.cli.lightning_cli"},
        ),
        (
            "from lit_optim.cli.main import main; main(['list'])",
            {"lightning", "torchmetrics", "torchvision", "lit_optim.cli.lightning_cli"},
        ),
        # lit-tune --help and --version: no Optuna, Lightning or torch
        (
            "from tuning.cli import main; main(['--help'])",
            {"optuna", "lightning", "torch", "sqlalchemy"},
        ),
        (
            "from tuning.cli import main; main(['--version'])",
            {"optuna", "lightning", "torch", "sqlalchemy"},
        ),
        (
            "from tuning.cli import main; main(['run', '--help'])",
            {"optuna", "lightning", "torch", "sqlalchemy"},
        ),
        # the population's building blocks sit with the plugins: nothing above them
        (
            "import lit_optim.population.rules, lit_optim.population.stacked",
            {
                "lit_optim.training.task",
                "lit_optim.catalog.factory",
                "lit_optim.cli.main",
                "lit_optim.population.task",
            },
        ),
    ],
)
def test_lower_layers_do_not_load_higher_ones(statement, forbidden):
    assert not _loaded_after(statement) & forbidden


def _exported(module: str) -> set[str] | None:
    """The names ``module`` declares public: its ``__all__`` (a lazy package's table keys and
    what it imports), or None where it declares none."""
    path = ROOT / Path(*module.split("."))
    file = path.with_suffix(".py") if path.with_suffix(".py").exists() else path / "__init__.py"
    tree = ast.parse(file.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "__all__" for t in node.targets
        ):
            try:
                return set(ast.literal_eval(node.value))
            except ValueError:  # sorted(_EXPORTS): a lazy package
                return set(_lazy_exports().get(module, {})) | {
                    alias.asname or alias.name
                    for n in tree.body
                    if isinstance(n, ast.ImportFrom)
                    for alias in n.names
                }
    return None


def test_modules_import_from_each_other_only_what_the_other_exports():
    # A name another module imports is part of its surface: it is in that module's __all__,
    # and a private name (``_evaluate``) never crosses a module boundary.
    crossing = []
    for path in [*(ROOT / "lit_optim").rglob("*.py"), *(ROOT / "tuning").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module):
                continue
            if node.module.split(".")[0] not in ("lit_optim", "tuning"):
                continue
            exported = _exported(node.module)
            package = ROOT / Path(*node.module.split("."))
            for alias in node.names:
                submodule = (package / f"{alias.name}.py").exists() or (
                    package / alias.name
                ).is_dir()
                dunder = alias.name.startswith("__")
                if not (submodule or dunder) and (exported is None or alias.name not in exported):
                    crossing.append(f"{_module_name(path)} imports {node.module}.{alias.name}")
    assert not crossing, "\n".join(crossing)


def _package_of(module: str) -> str:
    """The innermost package below the roots that holds ``module`` (``lit_optim.catalog``,
    ``tuning.runner``); a root's own modules (``lit_optim.testing``, ``tuning.cli``) have none
    but the root."""
    parts = module.split(".")
    for end in range(len(parts), 1, -1):
        candidate = ".".join(parts[:end])
        if (ROOT / Path(*parts[:end]) / "__init__.py").exists():
            return candidate
    return parts[0]


def _unexported_crossings(modules: dict[str, str]) -> list[str]:
    """Names the ``modules`` ({module name: source}) import from a module of another project
    package that the package itself does not export (its ``__all__``)."""
    missing = []
    for name, source_text in modules.items():
        own = _package_of(name)
        for node in ast.walk(ast.parse(source_text)):
            if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module):
                continue
            if node.module.split(".")[0] not in ("lit_optim", "tuning"):
                continue
            source = _package_of(node.module)
            if source in ("lit_optim", "tuning") or source == own or node.module == source:
                continue
            exported = _exported(source) or set()
            missing += [
                f"{name} imports {node.module}.{alias.name}, which {source} does not export"
                for alias in node.names
                if alias.name not in exported
            ]
    return missing


def test_each_package_exports_what_other_packages_import_from_it():
    # A package's __init__ is its surface: what another package takes from one of its
    # modules, it lists (lazily, with an `if TYPE_CHECKING:` re-export for editors and mypy).
    files = [*(ROOT / "lit_optim").rglob("*.py"), *(ROOT / "tuning").rglob("*.py")]
    missing = _unexported_crossings({_module_name(path): path.read_text() for path in files})
    assert not missing, "\n".join(missing)


def test_the_package_surface_check_sees_a_planted_crossing():
    planted = "from tuning.runner.population import run_population_worker, check_population\n"
    assert _unexported_crossings({"tuning.reports.planted": planted}) == [
        "tuning.reports.planted imports tuning.runner.population.run_population_worker, "
        "which tuning.runner does not export"
    ]
