"""How long the commands take to answer before they do any work, against ``import torch``.

    python bench/startup.py [--repeat 5]

Each command runs in a fresh interpreter ``--repeat`` times, interleaved with the baseline
(``python -c "import torch"``) so that a noisy machine slows both alike; the median of each is
printed, and its difference to the baseline's median.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

BASELINE = [sys.executable, "-c", "import torch"]
COMMANDS = {
    "lit-optim --version": ["lit-optim", "--version"],
    "lit-optim --help": ["lit-optim", "--help"],
    "lit-optim list": ["lit-optim", "list"],
    "lit-tune --version": ["lit-tune", "--version"],
    "lit-tune --help": ["lit-tune", "--help"],
    "lit-tune run --help": ["lit-tune", "run", "--help"],
    "lit-optim fit --help": ["lit-optim", "fit", "--help"],
}


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    missing = [c[0] for c in COMMANDS.values() if shutil.which(c[0]) is None]
    if missing:
        raise SystemExit(f"{missing[0]} is not on PATH: pip install -e . first")
    times: dict[str, list[float]] = {name: [] for name in ["import torch", *COMMANDS]}
    for _ in range(args.repeat):
        times["import torch"].append(seconds(BASELINE))
        for name, command in COMMANDS.items():
            times[name].append(seconds(command))
    base = statistics.median(times["import torch"])
    print(f"{'command':<24} {'median s':>9} {'- import torch':>15}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<24} {median:>9.2f} {median - base:>+15.2f}")


if __name__ == "__main__":
    main()
