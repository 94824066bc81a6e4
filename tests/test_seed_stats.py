"""Tests for normlab.experiments.seed_stats: Student-t probabilities and paired comparisons."""

import pytest

from normlab.experiments.seed_stats import (
    final_losses,
    paired_difference,
    seed_comparisons,
    t_quantile,
    t_two_sided_p,
)


@pytest.mark.parametrize("df, t975", [(1, 12.706), (4, 2.776), (10, 2.228), (30, 2.042)])
def test_t_quantiles_match_the_tables(df, t975):
    assert t_quantile(0.975, df) == pytest.approx(t975, abs=1e-3)
    assert t_two_sided_p(t975, df) == pytest.approx(0.05, abs=1e-4)


def test_t_p_value_is_one_at_zero_and_falls_with_t():
    assert t_two_sided_p(0.0, 4) == 1.0
    assert t_two_sided_p(-3.0, 4) == t_two_sided_p(3.0, 4) < t_two_sided_p(2.0, 4)


def test_paired_difference_of_a_constant_shift_plus_noise():
    a = {0: 2.0, 1: 2.3, 2: 1.9, 3: 2.1}
    b = {0: 2.11, 1: 2.39, 2: 2.02, 3: 2.18}  # 0.1 higher, +-0.02
    cmp = paired_difference(a, b)
    assert cmp["diffs"] == pytest.approx([0.11, 0.09, 0.12, 0.08])
    assert cmp["mean"] == pytest.approx(0.1)
    assert cmp["low"] < 0.1 < cmp["high"] and cmp["low"] > 0
    assert cmp["p"] < 0.01 and cmp["b_higher"] == cmp["n"] == 4
    # the seed spread of a (0.4) is far larger than the difference, but pairing removes it
    swapped = paired_difference(b, a)
    assert swapped["mean"] == pytest.approx(-0.1) and swapped["b_higher"] == 0
    assert swapped["p"] == pytest.approx(cmp["p"])


def test_paired_difference_without_an_effect_straddles_zero():
    cmp = paired_difference({0: 1.0, 1: 2.0, 2: 3.0}, {0: 1.1, 1: 1.9, 2: 3.05})
    assert cmp["low"] < 0 < cmp["high"] and cmp["p"] > 0.5


def test_paired_difference_rejects_mismatched_seeds():
    with pytest.raises(ValueError, match="different seeds"):
        paired_difference({0: 1.0, 1: 2.0}, {0: 1.0, 2: 2.0})
    with pytest.raises(ValueError, match="at least two"):
        paired_difference({0: 1.0}, {0: 2.0})


def test_final_losses_groups_by_norm_placement_and_seed():
    runs = [{"config": {"norm": "rmsnorm", "placement": p, "seed": s}, "val_loss": [3.0, v]}
            for p, s, v in [("pre", 0, 2.1), ("pre", 1, 2.2), ("post", 0, 2.0)]]
    assert final_losses({"runs": runs}) == {("rmsnorm", "pre"): {0: 2.1, 1: 2.2},
                                            ("rmsnorm", "post"): {0: 2.0}}


def test_seed_comparisons_pair_placements_within_a_norm_and_norms_within_a_placement():
    finals = {(n, p): {0: 1.0} for n in ("layernorm", "rmsnorm")
              for p in ("post", "pre", "sandwich")}
    names = [(name, a, b) for name, a, b in seed_comparisons(finals)]
    assert names[0] == ("LayerNorm: pre − post", ("layernorm", "post"), ("layernorm", "pre"))
    assert ("sandwich: RMSNorm − LayerNorm", ("layernorm", "sandwich"),
            ("rmsnorm", "sandwich")) in names
    assert len(names) == 2 * 2 + 3
    only_ln = {k: v for k, v in finals.items() if k[0] == "layernorm"}
    assert len(seed_comparisons(only_ln)) == 2  # no norm comparison without RMSNorm runs
