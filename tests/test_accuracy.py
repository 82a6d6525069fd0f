"""The model-accuracy numbers the benchmark reports."""

import pytest

from morello.tune.accuracy import accuracy, spearman


def test_rank_correlation_is_one_for_the_same_order_whatever_the_scale() -> None:
    assert spearman([1, 2, 3, 4], [10, 200, 3000, 40000]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


def test_rank_correlation_gives_ties_their_mean_rank() -> None:
    # x ranks 0.5, 0.5, 2; y ranks 0, 1, 2: Pearson of the ranks.
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(0.8660254)


def test_rank_correlation_needs_two_candidates() -> None:
    with pytest.raises(ValueError):
        spearman([1.0], [1.0])


def test_accuracy_ranks_within_shapes_and_errs_over_every_program() -> None:
    shapes = [
        [(1.0, 2.0), (2.0, 4.0), (3.0, 6.0)],  # half the time, in the right order
        [(1.0, 1.0), (2.0, 1.5)],  # right order; errors 0 and 1/3
        [(5.0, 4.0)],  # one program: no ranking, an error of 1/4
    ]
    found = accuracy(shapes)
    assert found.shapes == 2 and found.candidates == 6
    assert found.median_rank_correlation == pytest.approx(1.0)
    assert found.median_error == pytest.approx((0.5 + 1 / 3) / 2)
    assert "over 6 programs" in str(found)
