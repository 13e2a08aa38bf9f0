from hypothesis import given
from hypothesis import strategies as st

from exporters.cardinality import OTHER, TopKLabel


def test_many_one_off_values_fold_into_other() -> None:
    bound = TopKLabel(5)
    labels = {bound.label(f"key-{i}") for i in range(2000)}
    assert len(labels - {OTHER}) == 5
    assert OTHER in labels
    assert bound.folded == 1995


def test_a_steady_heavy_tenant_displaces_a_quiet_one() -> None:
    evicted: list[str] = []
    bound = TopKLabel(2, on_evict=evicted.append)
    bound.label("early-a")
    bound.label("early-b")
    results = [bound.label("heavy") for _ in range(5)]
    assert results[0] == OTHER  # not yet clearly heavier
    assert results[-1] == "heavy"
    assert evicted == ["early-a"]
    assert bound.kept == {"early-b", "heavy"}


def test_one_off_burst_does_not_push_out_steady_tenants() -> None:
    bound = TopKLabel(3)
    for _ in range(50):
        for name in ("a", "b", "c"):
            bound.label(name)
    for i in range(5000):
        bound.label(f"spray-{i}")
    assert bound.kept == {"a", "b", "c"}


@given(st.lists(st.integers(min_value=0, max_value=60), max_size=400),
       st.integers(min_value=1, max_value=6))
def test_never_more_than_k_kept(stream: list[int], k: int) -> None:
    live: set[str] = set()
    bound = TopKLabel(k, on_evict=live.discard)
    for value in stream:
        label = bound.label(f"t{value}")
        if label != OTHER:
            live.add(label)
        assert len(live) <= k
        assert live == bound.kept
