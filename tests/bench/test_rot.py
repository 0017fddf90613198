"""bench rot: the naive book rots where the service's does not, on the same frames."""

from market_data.bench.rot import run_rot


def test_a_naive_book_rots_while_the_service_book_stays_exact() -> None:
    naive, bounded, service = run_rot(6000, check_every=20)
    assert naive.checks_wrong > 0 and naive.levels_wrong > 0  # the rot shows within the run
    assert (bounded.levels_wrong, service.levels_wrong) == (0, 0)
    assert len(service.audits) == 2
    assert all(a.top_differences == 0 and not a.top_of_book for a in service.audits)
