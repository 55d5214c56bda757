"""The lr range test's suggestion, used as is, on the digits recipe: does it train?

    python bench/lr_find_digits.py [optimizer ...]      (default: sgd adam lamb)

For each optimizer: `lit-optim lr-find` on recipes/digits/mlp.yaml with that optimizer, then
`lit-optim fit` of the exported recipe (the recipe's own cosine schedule and 30 epochs).
Prints the suggested lr, the divergence point and the final / best val_acc.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "digits" / "mlp.yaml"


def main(optimizers: list[str]) -> None:
    print(
        f"{'optimizer':<10} {'suggested lr':>12} {'diverges at':>12} {'final val_acc':>14} "
        f"{'best val_acc':>13}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in optimizers:
            found = subprocess.run(
                [
                    "lit-optim",
                    "lr-find",
                    "--config",
                    str(RECIPE),
                    "--model.optimizer",
                    name,
                    "--export",
                    "found.yaml",
                    "--out",
                    "curve",
                ],
                cwd=tmp,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            fit = subprocess.run(
                ["lit-optim", "fit", "--config", "found.yaml"],
                cwd=tmp,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            lr = re.search(r"suggested lr: (\S+)", found).group(1)
            div = re.search(r"diverges at: (\S+)", found).group(1)
            final, best = re.search(r"val_acc\s+final (\S+) .*best (\S+)", fit).groups()
            print(f"{name:<10} {lr:>12} {div:>12} {final:>14} {best:>13}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["sgd", "adam", "lamb"])
