"""The byte-balanced split of ``main`` before it was sped up (a numpy call per slice): the
reference the faster :func:`~spinnaker2_backend.mapping.partition._balanced_split` must
equal exactly (tests only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def reference_greedy_split(unit_bytes: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Contiguous slices, each as long as its units fit in ``budget`` bytes (fewest slices)."""
    prefix = np.concatenate([[0], np.cumsum(unit_bytes)])
    bounds = []
    start, n = 0, len(unit_bytes)
    while start < n:
        stop = int(np.searchsorted(prefix, prefix[start] + budget, side="right")) - 1
        stop = max(stop, start + 1)  # every slice holds at least one unit
        bounds.append((start, min(stop, n)))
        start = min(stop, n)
    return bounds


def reference_max_cost(unit_bytes: np.ndarray, bounds: Sequence[tuple[int, int]]) -> int:
    prefix = np.concatenate([[0], np.cumsum(unit_bytes)])
    return int(max(prefix[b] - prefix[a] for a, b in bounds))


def reference_balanced_split(unit_bytes: np.ndarray, num_slices: int) -> list[tuple[int, int]]:
    """``num_slices`` contiguous non-empty slices whose largest byte cost is smallest.

    Compares a quantile split of the cumulative cost (even slices) with the optimal min-max
    split (binary search on the budget with greedy packing) and keeps the better one.
    """
    n = len(unit_bytes)
    if not 1 <= num_slices <= n:
        raise ValueError(f"cannot split {n} units into {num_slices} non-empty slices")
    prefix = np.concatenate([[0], np.cumsum(unit_bytes)]).astype(np.int64)
    total = int(prefix[-1])
    # Quantile split: cut where the cumulative cost crosses i * total / k.
    cuts = [0]
    for i in range(1, num_slices):
        target = total * i / num_slices
        j = int(np.searchsorted(prefix, target))
        if j > 0 and abs(prefix[j - 1] - target) <= abs(prefix[min(j, n)] - target):
            j -= 1
        j = min(max(j, cuts[-1] + 1), n - (num_slices - i))
        cuts.append(j)
    cuts.append(n)
    quantile = list(zip(cuts[:-1], cuts[1:]))
    # Min-max split: smallest budget whose greedy packing needs at most k slices.
    lo, hi = int(unit_bytes.max()), total
    while lo < hi:
        mid = (lo + hi) // 2
        if len(reference_greedy_split(unit_bytes, mid)) <= num_slices:
            hi = mid
        else:
            lo = mid + 1
    greedy = reference_greedy_split(unit_bytes, lo)
    # Greedy may use fewer slices: split its largest slices until there are k.
    while len(greedy) < num_slices:
        widths = [b - a for a, b in greedy]
        k = int(np.argmax(widths))
        a, b = greedy[k]
        mid = (a + b) // 2
        greedy[k : k + 1] = [(a, mid), (mid, b)]
    if reference_max_cost(unit_bytes, greedy) < reference_max_cost(unit_bytes, quantile):
        return greedy
    return quantile
