"""The quantification workflow (ml.ldquant.workflow): group statistics add up, and a cohort of
drawn fields gives a table, a summary, figures and an analysis run that agree."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml.common.errors import MLError
from ml.ldquant.quantify import QuantError
from ml.ldquant.workflow import (
    COMPARISONS,
    QuantField,
    QuantSettings,
    common_pixel_um,
    dice_summary,
    group_of,
    group_summary,
    group_tests,
    quantify_cohort,
)

PX = 0.6  # um per pixel of the drawn fields

# reference units (lipid, protein, SHG) of the simulator's materials
INTERSTITIUM = (0.02, 0.11, 0.01)
WALL = (0.04, 0.30, 0.30)
EPITHELIUM = (0.06, 0.18, 0.0)
LUMEN = (0.0, 0.0, 0.0)
PHENOTYPES = ("normal", "NOA-SPT", "NOA-SPG", "NOA-SCO", None)


def drawn_field(rings, *, droplets=0, seed=0, size_um=(180, 180)):
    """(channels (3, H, W), truth instance map): tubule rings (cx, cy, r_out, wall, lumen_r)
    in um on interstitium, ``droplets`` bright lipid discs in the first ring's epithelium."""
    ny, nx = int(round(size_um[0] / PX)), int(round(size_um[1] / PX))
    yy, xx = (np.indices((ny, nx)) + 0.5) * PX
    ch = np.stack([np.full((ny, nx), v) for v in INTERSTITIUM])
    inst = np.zeros((ny, nx), np.int32)
    for i, (cx, cy, r, wall, lumen) in enumerate(rings, 1):
        rr = np.hypot(xx - cx, yy - cy)
        for m, v in (((rr <= r) & (rr > r - wall), WALL), (rr <= r - wall, EPITHELIUM),
                     (rr <= lumen, LUMEN)):
            ch[:, m] = np.asarray(v)[:, None]
        inst[rr <= r] = i
    if rings and droplets:
        cx, cy, r, wall, lumen = rings[0]
        for k in range(droplets):
            a = 2 * np.pi * k / droplets
            rd = (lumen + r - wall) / 2
            ch[0, np.hypot(xx - cx - rd * np.cos(a), yy - cy - rd * np.sin(a)) <= 1.5] = 0.8
    rng = np.random.default_rng(seed)
    ch += rng.normal(0.0, 1.0, ch.shape) * np.array([0.005, 0.008, 0.003])[:, None, None]
    return ch.astype(np.float32), inst


def qfield(uid, index, phenotype, patient, rings, **kw):
    ch, inst = drawn_field(rings, **kw)
    scan = {"uid": uid, "sample_id": f"S-{patient}", "patient_id": patient,
            "phenotype": phenotype, "diagnosis": "normal" if phenotype == "normal" else "NOA"}
    return QuantField(scan=scan, index=index, channels=ch, x_um=0.0, y_um=0.0,
                      pixel_um=PX), inst


# ----------------------------------------------------------------------------- pure parts
rows_strategy = st.lists(st.fixed_dictionaries({
    "phenotype": st.sampled_from(PHENOTYPES), "patient_id": st.sampled_from("ABCD"),
    "ld_mean_intensity": st.one_of(st.just(float("nan")), st.floats(0.2, 1.5)),
    "ld_area_percent": st.floats(0.0, 100.0)}), max_size=60)


def _grouped(rows):
    out = []
    for r in rows:
        g, sub = group_of(r["phenotype"])
        out.append({**r, "group": g, "subtype": sub})
    return out


@given(rows_strategy)
def test_group_sizes_add_up_to_the_tubule_count(rows):
    rows = _grouped(rows)
    per = group_summary(rows)
    n = {g: per.get(g, {"tubules": 0})["tubules"]
         for g in ("normal", "NOA", "SCO", "SPT", "SPG")}
    assert n["normal"] + n["NOA"] + n["SCO"] == sum(r["group"] is not None for r in rows)
    # the paper's groups: NOA is SPT + SPG; SCO is reported on its own
    assert n["SPT"] + n["SPG"] == n["NOA"]
    assert n["SCO"] == sum(r["phenotype"] == "NOA-SCO" for r in rows)
    for g, v in per.items():
        assert 0 <= v["tubules_with_lds"] <= v["tubules"] and v["patients"] <= v["tubules"]
        assert (v["median_ld_mean_intensity"] is None) == (v["tubules_with_lds"] == 0)


@given(rows_strategy)
def test_every_comparison_is_reported_once_in_order(rows):
    rows = _grouped(rows)
    tests, panels = group_tests(rows)
    assert [(t["index"], t["group_a"], t["group_b"], t["alternative"]) for t in tests] == \
        list(COMPARISONS)
    assert len(panels) == sum("error" not in t for t in tests)
    for t in tests:
        key = "group" if t["group_a"] == "normal" else "subtype"
        finite = [r for r in rows if r[key] == t["group_a"]
                  and np.isfinite(r[t["index"]])]
        assert t["n_a_all"] == len(finite)
        assert "error" in t or 0.0 <= t["p_value"] <= 1.0


def test_pixel_sizes_must_agree_and_dice_summary_is_ordered():
    assert common_pixel_um([("aaaaaaaa1", 0.3), ("bbbbbbbb2", 0.30001)]) == 0.3
    with pytest.raises(QuantError, match="mix pixel sizes"):
        common_pixel_um([("aaaaaaaa1", 0.3), ("bbbbbbbb2", 0.6)])
    with pytest.raises(QuantError, match="no complete fields"):
        common_pixel_um([])
    assert dice_summary([]) is None
    d = dice_summary([{"dice": v, "phenotype": p} for v, p in
                      [(0.9, "normal"), (0.5, "normal"), (0.7, "NOA-SPT")]])
    assert d["truth_tubules"] == 3 and d["min_dice"] == 0.5
    assert d["min_dice"] <= min(d["mean_dice"], d["median_dice"])
    assert d["per_phenotype"] == pytest.approx({"NOA-SPT": 0.7, "normal": 0.7})


@pytest.mark.parametrize("bad", [dict(ld_threshold=0.0), dict(table_format="xlsx"),
                                 dict(overlays=-1)])
def test_bad_settings_are_ml_errors(bad):
    with pytest.raises(MLError):
        QuantSettings(**bad)


# ----------------------------------------------------------------------------- the workflow
def test_cohort_of_drawn_fields_gives_table_summary_figures_and_run(tmp_path):
    ring = [(90, 90, 70, 6, 20)]
    made = [qfield("uid-normal-1", 0, "normal", "A", ring, droplets=6, seed=1),
            qfield("uid-spt-000-1", 0, "NOA-SPT", "B", ring, droplets=2, seed=2),
            qfield("uid-spt-000-1", 1, "NOA-SPT", "B", [], seed=3),        # no tubule
            qfield("uid-spg-000-1", 0, "NOA-SPG", "C", ring, seed=4)]
    truth = {(f.scan["uid"], f.index): inst for f, inst in made}
    docs: list[tuple[str, dict]] = []
    stages: list[str] = []
    s = quantify_cohort(
        (f for f, _ in made), scan_uids=["uid-normal-1", "uid-spt-000-1", "uid-spg-000-1"],
        pixel_um=PX, report_dir=tmp_path, settings=QuantSettings(overlays=2, query={"c": 1}),
        truth=lambda f: truth[(f.scan["uid"], f.index)],
        publish=lambda name, doc: docs.append((name, doc)),
        progress=lambda stage, rec: stages.append(stage))
    assert stages == ["field"] * 4                                   # once per field
    assert s["runs"] == 3 and s["fields"] == 3 and s["tubules"] == 3
    assert [(e["scan_uid"], e["field"]) for e in s["fields_without_tubules"]] == [
        ("uid-spt-000-1", 1)]
    g = s["groups"]
    assert g["normal"]["tubules"] + g["NOA"]["tubules"] == s["tubules"]
    assert g["SPT"]["tubules"] + g["SPG"]["tubules"] == g["NOA"]["tubules"]
    assert len(s["tests"]) == 4 and all("error" in t for t in s["tests"])  # n < 3 each
    assert s["images"]["figure"] is None and len(s["images"]["overlays"]) == 2
    seg = s["tubule_segmentation_vs_truth"]
    assert seg["truth_tubules"] == 3 and 0.9 <= seg["min_dice"] <= 1.0
    df = pd.read_csv(s["table"])
    assert len(df) == s["tubules"] and set(df["group"]) == {"normal", "NOA"}
    assert (df.loc[df["ld_count"] == 0, "ld_mean_intensity"].isna()).all()
    assert df.set_index("phenotype").loc["normal", "ld_count"] > 0
    names = [n for n, _ in docs]
    assert names == ["start", "descriptor", "event", "event", "event", "stop"]
    start = docs[0][1]
    assert start["analysis"] == "ld-quantification" and start["query"] == {"c": 1}
    assert s["analysis_uid"] == start["uid"] and len(start["scan_uids"]) == 3
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["tubules"] == 3 and on_disk["bad_frames"] == []


def test_no_tubule_anywhere_is_an_ml_error(tmp_path):
    f, _ = qfield("uid-empty-001", 0, "normal", "A", [])
    with pytest.raises(QuantError, match="no tubules found in the 5 field"):
        quantify_cohort([f], scan_uids=["uid-empty-001"], pixel_um=PX, n_fields=5,
                        report_dir=tmp_path)


# ----------------------------------------------------------------------------- effect sizes
@given(st.lists(st.floats(-5, 5), min_size=3, max_size=30),
       st.lists(st.floats(-5, 5), min_size=3, max_size=30),
       st.floats(0.1, 10), st.floats(-3, 3))
def test_cohens_d_is_invariant_to_a_common_affine_change_and_antisymmetric(a, b, scale, shift):
    from ml.ldquant.stats import cohens_d

    d, lo, hi = cohens_d(a, b)
    if np.isnan(d):
        return
    d2, lo2, hi2 = cohens_d(np.array(a) * scale + shift, np.array(b) * scale + shift)
    assert np.isclose(d, d2, rtol=1e-6, atol=1e-6)
    assert lo <= d <= hi and np.isclose(hi - lo, hi2 - lo2, rtol=1e-6, atol=1e-6)
    assert np.isclose(cohens_d(b, a)[0], -d, rtol=1e-9, atol=1e-9)


def test_cohens_d_interval_shrinks_with_n_and_covers_the_true_effect():
    from ml.ldquant.stats import cohens_d

    rng = np.random.default_rng(7)
    widths, covered = [], 0
    for n in (20, 80, 320):
        d, lo, hi = cohens_d(rng.normal(0.8, 1.0, n), rng.normal(0.0, 1.0, n))
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2]
    for _ in range(200):
        _, lo, hi = cohens_d(rng.normal(0.8, 1.0, 40), rng.normal(0.0, 1.0, 40))
        covered += lo <= 0.8 <= hi
    assert 0.88 <= covered / 200 <= 0.99  # nominal 95 %


def test_resampling_at_a_fixed_n_reports_power_not_pool_size():
    from ml.ldquant.stats import resample_comparison

    rng = np.random.default_rng(3)
    small = resample_comparison(rng.normal(0.5, 1, 40), rng.normal(0, 1, 40), n_a=14,
                                n_b=13, reps=200, alternative="greater", rng=1)
    big_pool = resample_comparison(rng.normal(0.5, 1, 4000), rng.normal(0, 1, 4000),
                                   n_a=14, n_b=13, reps=200, alternative="greater", rng=1)
    # a 100x larger pool does not make the test at n = 14 / 13 any more powerful
    assert abs(small.summary()["fraction_p_below_alpha"]
               - big_pool.summary()["fraction_p_below_alpha"]) < 0.25
    assert big_pool.reps + big_pool.failed == 200
    assert 0.0 < big_pool.summary()["d_median"] < 1.2
