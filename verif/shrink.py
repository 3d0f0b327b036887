"""A failing case reduced to a minimal program (delta debugging over its instructions).

ddmin (Zeller): try the program without each of n chunks of its instructions; keep the
first that still fails the same way and coarsen, else refine, until no single
instruction can go. "The same way" is the verdict's signature (divergence, mismatch,
wrong outcome, hang), so a shrink never trades the bug for another.
"""

from __future__ import annotations

from collections.abc import Callable

from verif.case import Case


def shrink(case: Case, fails: Callable[[Case], bool], budget: int = 300) -> tuple[Case, int]:
    """(the smallest failing case found, runs spent); `fails` re-runs a candidate."""
    words = list(case.words)
    runs, n = 0, 2
    while len(words) > 1 and runs < budget:
        size = -(-len(words) // n)
        for start in range(0, len(words), size):
            candidate = words[:start] + words[start + size :]
            runs += 1
            if candidate and fails(case.with_words(candidate)):
                words, n = candidate, max(n - 1, 2)
                break
            if runs >= budget:
                break
        else:
            if size == 1:
                break  # 1-minimal: no single instruction can be removed
            n = min(len(words), 2 * n)
    return case.with_words(words), runs
