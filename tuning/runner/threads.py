"""``lit-tune run --threads``: how many torch threads each worker process trains with on CPU.

On a busy machine two torch threads per process can be many times slower than one: each
parallel region waits for its slowest thread, and a thread the scheduler has put aside stalls
the others (30 epochs of the digits MLP: 0.5 s on one thread, 23–44 s on two under a load of
3–5). Which count is faster depends on the load when the study starts, so ``auto`` measures it
there: a short probe of training steps of a small MLP, as many members wide as the study's
populations, timed at each candidate count, interleaved, the best of three rounds each, and
says what it chose in one line. An integer sets it.
"""

from __future__ import annotations

import os
import time

from lit_optim import ConfigError

__all__ = ["check_threads", "choose_threads"]


def check_threads(threads: int | str) -> None:
    if threads == "auto":
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"--threads must be auto or an integer >= 1, got {threads!r}")


def choose_threads(
    threads: int | str, n_workers: int, accelerator: str, population: int = 1
) -> tuple[int | None, str | None]:
    """(torch threads per worker, the line that says why), or (None, None) where training
    does not run on the CPU (an accelerator's threads only feed it). ``population``: how
    many trials train at once, as wide as the probe is made."""
    check_threads(threads)
    if threads != "auto":
        return int(threads), None
    import torch

    if accelerator not in ("cpu", "auto") or (accelerator == "auto" and torch.cuda.is_available()):
        return None, None
    cores = os.cpu_count() or 1
    share = max(1, cores // n_workers)  # each worker its share of the cores
    candidates = sorted({1, share})
    if len(candidates) == 1:
        return share, None
    seconds = _probe(candidates, population)
    best = min(candidates, key=lambda threads: seconds[threads])
    load = os.getloadavg()[0]
    timings = ", ".join(
        f"{n} thread{'s' if n > 1 else ''} {seconds[n] * 1e3:.1f} ms" for n in candidates
    )
    width = f", {population} members wide" if population > 1 else ""
    return best, (
        f"threads: {best} per worker, the faster in a probe at start{width} ({timings}; "
        f"load {load:.1f} on {cores} cores); --threads N sets it"
    )


def _probe(candidates: list[int], members: int = 1, rounds: int = 3) -> dict[int, float]:
    """Seconds of a few training steps of a small MLP (forward, backward, Adam: the many small
    kernels a trial runs, each a parallel region that waits for its slowest thread), stacked
    ``members`` times as a population's batched matmuls are, at each thread count, the best of
    ``rounds``. Large matrix products alone favour more threads under load where a real trial
    does not; a population's wider products favour them more than one trial's."""
    import torch

    before, rng = torch.get_num_threads(), torch.get_rng_state()
    torch.manual_seed(0)
    widths = (64, 256, 128, 10)
    weights = [
        (torch.randn(members, a, b) / a**0.5).requires_grad_() for a, b in zip(widths, widths[1:])
    ]
    optimizer = torch.optim.Adam(weights)
    x, y = torch.randn(128, 64), torch.randint(0, 10, (members * 128,))
    steps = max(2, round(10 / members**0.5))  # under a second in all on 2 busy cores
    best = {n: float("inf") for n in candidates}
    try:
        for _ in range(rounds):
            for n in candidates:
                torch.set_num_threads(n)
                start = time.perf_counter()
                for _ in range(steps):
                    optimizer.zero_grad()
                    h = x.expand(members, -1, -1)
                    for i, w in enumerate(weights):
                        h = torch.bmm(h, w)
                        h = h.relu() if i < len(weights) - 1 else h
                    torch.nn.functional.cross_entropy(h.reshape(-1, widths[-1]), y).backward()
                    optimizer.step()
                best[n] = min(best[n], time.perf_counter() - start)
    finally:  # the caller's threads and random state, as they were
        torch.set_num_threads(before)
        torch.set_rng_state(rng)
    return best
