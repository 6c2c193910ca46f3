"""The mapper's gallop-then-bisect search (:func:`largest_that_fits`), which the partitioner
and ``benchmarks/int8_capacity.py`` share."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from spinnaker2_backend.mapping.partition import largest_that_fits


@given(
    low=st.integers(-5, 20),
    span=st.integers(0, 300),
    answer_at=st.integers(-1, 300),
    guess=st.integers(-10, 400),
    bounded=st.booleans(),
)
def test_finds_the_largest_fitting_n(low, span, answer_at, guess, bounded):
    high = low + span if bounded else None
    answer = low + min(answer_at, span) if bounded else low + answer_at  # low - 1: none fits
    probes: list[int] = []

    def fits(n: int) -> bool:
        probes.append(n)
        return n <= answer

    found = largest_that_fits(fits, low=low, guess=guess, high=high)
    assert found == answer
    assert all(n >= low and (high is None or n <= high) for n in probes)
    if found >= low:
        assert found in probes  # the answer was checked, not inferred
    assert len(probes) <= 4 * (max(span, answer_at, abs(guess)) + 2).bit_length() + 2
