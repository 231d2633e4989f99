"""studies.tubule_gain's summary follows the per-field numbers it is given."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from studies.tubule_gain import summarise

dice = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6)


@given(st.lists(st.tuples(st.floats(0.05, 0.3), st.floats(0.05, 0.3), dice, dice),
                min_size=1, max_size=8))
def test_summary_counts_and_bounds(fields):
    rows = [{"level": lv, "truth_cytoplasm_protein": tr, "dice_estimated": de,
             "dice_fixed": df} for lv, tr, de, df in fields]
    s = summarise(rows)
    assert s["fields"] == len(rows)
    assert s["level"]["min"] <= s["level"]["median"] <= s["level"]["max"]
    lo, hi = s["level_over_truth"]["min"], s["level_over_truth"]["max"]
    assert lo <= s["level_over_truth"]["mean"] * (1 + 1e-12) and s["level_over_truth"]["cv"] >= 0
    assert hi >= lo
    for key in ("estimated", "fixed"):
        d = [x for r in rows for x in r[f"dice_{key}"]]
        assert s[f"dice_{key}"]["truth_tubules"] == len(d)
        assert s[f"dice_{key}"]["missed"] == sum(x < 0.05 for x in d)
        assert math.isclose(s[f"dice_{key}"]["mean"], sum(d) / len(d), abs_tol=1e-12)


def test_a_level_that_tracks_the_truth_has_no_spread():
    rows = [{"level": 2 * t, "truth_cytoplasm_protein": t, "dice_estimated": [1.0],
             "dice_fixed": [0.0]} for t in (0.08, 0.15, 0.26)]
    s = summarise(rows)
    assert s["level_over_truth"]["mean"] == pytest.approx(2.0)
    assert s["level_over_truth"]["cv"] == pytest.approx(0.0, abs=1e-12)
    assert s["dice_fixed"]["missed"] == 3 and s["dice_estimated"]["missed"] == 0
