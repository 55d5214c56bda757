"""No private attribute of a dependency (torch, Lightning, Optuna, jsonargparse, torchmetrics)
is read or written outside the one adapter module each has: a ``x._name`` access anywhere else
in lit_optim/ or tuning/ must be on our own object (``self``, ``cls``) or a module of ours."""

from __future__ import annotations

import re

from support import ROOT

# The adapters, each with a test of its own pinning what it relies on.
# adapter -> (its test, what the test must exercise)
ADAPTERS = {
    "lit_optim/catalog/torch_private.py": ("tests/catalog/test_torch_private.py", "torch_private"),
    "tuning/storage/optuna_private.py": ("tests/tuning/test_optuna_private.py", "optuna_private"),
    # the one override of a private LightningCLI method (super()._parse_ckpt_path), which
    # reads --ckpt_path: pinned by the fit-hardening checkpoint cases
    "lit_optim/cli/lightning_cli.py": ("tests/cli/test_fit_hardening.py", "--ckpt_path"),
    # no private name, but an undocumented behaviour (a None hook is not dispatched)
    "lit_optim/callbacks/step_dispatch.py": (
        "tests/callbacks/test_step_dispatch.py",
        "skip_unused_batch_hooks",
    ),
}
ACCESS = re.compile(r"([A-Za-z_][A-Za-z0-9_]*|\)|\])\._[a-z][A-Za-z0-9_]*")
OURS = {"self", "cls"}
PUBLIC_BY_CONVENTION = {"_replace", "_asdict", "_fields", "_make"}  # namedtuple's public API


def _code(line: str) -> str:
    line = re.sub(r"(\"\"\"|''').*?\1|\"[^\"]*\"|'[^']*'|``[^`]*``", "", line)
    return line.split("#")[0]


def test_private_attributes_of_dependencies_only_in_their_adapters():
    offenders = []
    for path in sorted([*ROOT.glob("lit_optim/**/*.py"), *ROOT.glob("tuning/**/*.py")]):
        rel = str(path.relative_to(ROOT))
        if rel in ADAPTERS:
            continue
        in_docstring = False
        for number, line in enumerate(path.read_text().splitlines(), 1):
            quotes = line.count('"""') + line.count("'''")
            if in_docstring or line.lstrip().startswith(("from ", "import ")):
                in_docstring ^= quotes % 2 == 1
                continue
            if quotes % 2 == 1:
                in_docstring = True
            for match in ACCESS.finditer(_code(line)):
                receiver, name = match.group(1), match.group(0).split(".")[-1]
                if receiver in OURS or name in PUBLIC_BY_CONVENTION:
                    continue
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert not offenders, "private attributes outside the adapters:\n" + "\n".join(offenders)


def test_every_adapter_has_its_test():
    for adapter, (test, exercised) in ADAPTERS.items():
        assert (ROOT / adapter).is_file(), adapter
        assert exercised in (ROOT / test).read_text(), (adapter, test)
