"""Mean ± spread over seeds, the tables built from arm results, and the paired retrieval gap."""

import statistics

import pytest

from birdie.experiment.aggregate import aggregate, mean_spread, retrieval_gap
from tests.experiment.fakes import arm_result


def test_mean_spread_matches_the_sample_statistics():
    values = [0.2, 0.35, 0.5, 0.1]
    stat = mean_spread(values)
    assert stat["mean"] == pytest.approx(statistics.mean(values))
    assert stat["spread"] == pytest.approx(statistics.stdev(values))
    assert stat["n"] == 4 and stat["values"] == values


def test_one_seed_has_no_spread_and_no_values_is_an_error():
    assert mean_spread([0.3])["spread"] is None
    with pytest.raises(ValueError, match="no values"):
        mean_spread([])


def test_aggregate_groups_by_arm_and_averages_each_column_over_seeds():
    results = [arm_result("ntp", 0, 0.1), arm_result("birdie", 0, 0.5), arm_result("ntp", 1, 0.2),
               arm_result("birdie", 1, 0.7)]
    summary = aggregate(results)
    digits = summary["tables"]["phone-book digit accuracy"]
    assert list(digits) == ["hawk ntp", "hawk birdie"]
    assert digits["hawk birdie"]["all"]["mean"] == pytest.approx(0.6)
    assert digits["hawk birdie"]["all"]["spread"] == pytest.approx(statistics.stdev([0.5, 0.7]))
    assert digits["hawk ntp"]["k=2"]["mean"] == pytest.approx(statistics.mean([0.05, 0.1]))
    losses = summary["tables"]["validation loss per objective (end of pretraining)"]
    assert losses["hawk ntp"]["next_token_prediction"]["mean"] == pytest.approx(2.0 - 0.15)
    assert summary["tables"]["wall time (s)"]["hawk ntp"]["pretrain"]["values"] == [100.0, 101.0]
    assert summary["seeds"] == {"hawk ntp": [0, 1], "hawk birdie": [0, 1]}


def test_the_gap_pairs_seeds_and_judges_it_against_the_paired_spread():
    consistent = [arm_result("ntp", s, 0.1 + 0.01 * s) for s in range(3)]
    consistent += [arm_result("birdie", s, 0.5 + 0.02 * s) for s in range(3)]
    gap = retrieval_gap(consistent, "hawk")
    assert gap["gap"]["mean"] == pytest.approx(0.41)
    assert gap["beyond_spread"] is True

    noisy = [arm_result("ntp", 0, 0.1), arm_result("ntp", 1, 0.6), arm_result("birdie", 0, 0.5),
             arm_result("birdie", 1, 0.3)]
    assert retrieval_gap(noisy, "hawk")["beyond_spread"] is False
    # two seeds: a gap 2.5 standard errors wide is not enough (t with 1 degree of freedom is 12.7)
    two = [arm_result("ntp", 0, 0.100), arm_result("ntp", 1, 0.100), arm_result("birdie", 0, 0.096),
           arm_result("birdie", 1, 0.098)]
    assert retrieval_gap(two, "hawk")["beyond_spread"] is False


def test_the_gap_needs_both_arms_and_cannot_be_judged_with_one_seed():
    assert retrieval_gap([arm_result("birdie", 0, 0.5)], "hawk") is None
    one_seed = retrieval_gap([arm_result("birdie", 0, 0.5), arm_result("ntp", 0, 0.1)], "hawk")
    assert one_seed["gap"]["mean"] == pytest.approx(0.4)
    assert one_seed["beyond_spread"] is None
    # seeds present in only one arm are not paired
    unpaired = retrieval_gap([arm_result("birdie", 0, 0.5), arm_result("ntp", 1, 0.1)], "hawk")
    assert unpaired is None
