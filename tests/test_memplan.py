"""Memory planner: no two live buffers overlap (property-based), and reuse works."""

from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.memplan import ALIGN, greedy_offsets, peak_live

items_strategy = st.lists(
    st.tuples(st.integers(1, 5000), st.integers(0, 50), st.integers(0, 20)).map(
        lambda t: (t[0], t[1], t[1] + t[2])
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(items_strategy)
def test_live_buffers_never_overlap(items):
    offsets = greedy_offsets(items)
    for i, (si, fi, li) in enumerate(items):
        assert offsets[i] % ALIGN == 0
        for j in range(i + 1, len(items)):
            sj, fj, lj = items[j]
            if fi <= lj and fj <= li:  # both live at some point
                assert offsets[i] + si <= offsets[j] or offsets[j] + sj <= offsets[i]


@settings(max_examples=100, deadline=None)
@given(items_strategy)
def test_footprint_between_peak_and_no_reuse(items):
    offsets = greedy_offsets(items)
    footprint = max(o + s for o, (s, _, _) in zip(offsets, items, strict=True))
    assert footprint >= peak_live(items)
    assert footprint <= sum(-(-s // ALIGN) * ALIGN for s, _, _ in items)


def test_disjoint_lifetimes_share_memory():
    assert greedy_offsets([(100, 0, 1), (100, 2, 3), (100, 4, 5)]) == [0, 0, 0]
