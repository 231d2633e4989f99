"""Lipid-droplet quantification per tubule (ml.ldquant): drawn rings and droplets with known
areas and intensities, Leydig cells and droplets outside the rings, error cases, and a small
simulated normal field scored against the simulator's truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.ldquant.droplets import DEFAULT_LD_THRESHOLD, droplet_threshold, segment_droplets
from ml.ldquant.indexes import tubule_indexes
from ml.ldquant.quantify import FieldQuant, QuantError, quant_overlay_png, quantify_field
from ml.ldquant.tubules import (
    MIN_TUBULE_AREA_UM2,
    estimate_srs_gain,
    field_srs_gain,
    segment_tubules,
    tubule_dice,
)

PX = 0.6  # um per pixel of the drawn fields (the working grid is then 2 x 2 pixels)

# drawn materials (reference units): lipid / pure lipid, protein / pure lipid at 2930,
# SHG / dense collagen -- the simulator's levels (interstitium, lamina propria, epithelium)
INTERSTITIUM = (0.02, 0.11, 0.01)
WALL = (0.04, 0.30, 0.30)
EPITHELIUM = (0.06, 0.18, 0.0)
LUMEN = (0.0, 0.0, 0.0)
LEYDIG = (0.09, 0.25, 0.0)


def draw(size_um, rings=(), blobs=(), *, seed=0, noise=True, shg_fibrosis=None):
    """(lipid, protein, shg, disks): rings are (cx, cy, r_out, wall, lumen_r, gap_deg) in
    um (the SHG is off over ``gap_deg`` of the wall around +x, the wall stays); blobs are
    Leydig-cell discs (cx, cy, r); ``shg_fibrosis`` sets the interstitial SHG."""
    ny, nx = int(round(size_um[0] / PX)), int(round(size_um[1] / PX))
    yy, xx = (np.indices((ny, nx)) + 0.5) * PX
    ch = [np.full((ny, nx), v, np.float64) for v in INTERSTITIUM]
    if shg_fibrosis is not None:
        ch[2][:] = shg_fibrosis
    disks = []

    def put(mask, values):
        for c, v in zip(ch, values):
            c[mask] = v

    for cx, cy, r, wall, lumen, gap in rings:
        rr = np.hypot(xx - cx, yy - cy)
        put((rr <= r) & (rr > r - wall), WALL)
        put(rr <= r - wall, EPITHELIUM)
        if gap:
            ang = np.degrees(np.arctan2(yy - cy, xx - cx))
            ch[2][(rr <= r) & (rr > r - wall) & (np.abs(ang) < gap / 2)] = 0.0
        put(rr <= lumen, LUMEN)
        disks.append(rr <= r)
    for cx, cy, r in blobs:
        put(np.hypot(xx - cx, yy - cy) <= r, LEYDIG)
    if noise:
        rng = np.random.default_rng(seed)
        for c, sd in zip(ch, (0.005, 0.008, 0.003)):
            c += rng.normal(0.0, sd, c.shape)
    lip, pro, shg = (c.astype(np.float32) for c in ch)
    return lip, pro, shg, disks


def paint_droplets(lipid, centres_um, radius_um, intensity):
    """Flat-topped droplet discs (pixel centres within ``radius_um``); returns their mask."""
    ny, nx = lipid.shape
    yy, xx = (np.indices((ny, nx)) + 0.5) * PX
    m = np.zeros((ny, nx), bool)
    for cx, cy in centres_um:
        m |= np.hypot(xx - cx, yy - cy) <= radius_um
    lipid[m] = intensity
    return m


def only_match(tubules, disk):
    """The id of the predicted tubule covering most of ``disk``, and its mask."""
    ids, cnt = np.unique(tubules[disk], return_counts=True)
    cnt[ids == 0] = 0
    j = int(ids[np.argmax(cnt)])
    assert j > 0
    return j, tubules == j


# ----------------------------------------------------------------------------- tubules
def test_one_ring_is_one_tubule_with_the_disc_area():
    lip, pro, shg, (disk,) = draw((180, 180), [(90, 90, 70, 6, 20, 0)])
    tub = segment_tubules(pro, shg, lip, pixel_um=PX)
    assert tub.dtype == np.int32 and tub.shape == lip.shape
    assert set(np.unique(tub)) == {0, 1}
    area = (tub == 1).sum()
    assert area == pytest.approx(disk.sum(), rel=0.02)      # measured 1.005
    assert (tub == 1)[disk].mean() > 0.99                     # lumen filled, wall included
    assert (tub == 0)[~disk].mean() > 0.99                    # interstitium left out


def test_ring_with_wall_gap_is_closed():
    # NOA wall: thick, SHG off over 60 degrees (the protein-rich wall stays)
    lip, pro, shg, (disk,) = draw((180, 180), [(90, 90, 70, 15, 20, 60)])
    tub = segment_tubules(pro, shg, lip, pixel_um=PX)
    assert tub.max() == 1
    assert (tub == 1).sum() == pytest.approx(disk.sum(), rel=0.02)   # measured 0.995


def test_two_touching_rings_are_two_tubules():
    # outer radii 58 um, centres 116 um apart: the walls touch
    lip, pro, shg, disks = draw((180, 240), [(60, 90, 58, 6, 15, 0), (176, 90, 58, 6, 15, 0)])
    tub = segment_tubules(pro, shg, lip, pixel_um=PX)
    assert tub.max() == 2
    seen = set()
    for d in disks:
        j, m = only_match(tub, d)
        seen.add(j)
        assert m.sum() == pytest.approx(d.sum(), rel=0.03)    # measured 1.006
        assert 2 * (m & d).sum() / (m.sum() + d.sum()) > 0.98
    assert seen == {1, 2}


def test_ring_cut_by_the_border_is_kept_and_flagged():
    lip, pro, shg, (disk,) = draw((180, 180), [(30, 90, 70, 6, 20, 0)])
    q = quantify_field(lip, pro, shg, pixel_um=PX)
    assert q.n_tubules == 1
    row = q.rows[0]
    assert row["touches_border"] is True
    assert row["area_um2"] == pytest.approx(disk.sum() * PX * PX, rel=0.02)
    # centroid of the visible part of the disc (um from the top-left corner)
    yy, xx = (np.indices(disk.shape) + 0.5) * PX
    assert row["centroid_x_um"] == pytest.approx(xx[disk].mean(), abs=1.5)
    assert row["centroid_y_um"] == pytest.approx(yy[disk].mean(), abs=1.5)


def test_lumen_cut_by_the_border_is_filled():
    # the lumen reaches the field edge: the epithelium's hull does not cover all of it
    lip, pro, shg, (disk,) = draw((150, 150), [(125, 125, 110, 6, 45, 0)])
    tub = segment_tubules(pro, shg, lip, pixel_um=PX)
    assert tub.max() == 1
    assert (tub == 1)[disk].mean() > 0.99


def test_small_border_sliver_is_dropped():
    # a cap of ~1860 um^2 < 2827 um^2 (60 um disc) is not a tubule to quantify
    lip, pro, shg, (disk,) = draw((180, 180), [(-45, 90, 70, 6, 20, 0)])
    assert disk.sum() * PX * PX < MIN_TUBULE_AREA_UM2
    assert segment_tubules(pro, shg, lip, pixel_um=PX).max() == 0
    with pytest.raises(QuantError, match="no seminiferous tubule found"):
        quantify_field(lip, pro, shg, pixel_um=PX)
    # ... unless the minimum says otherwise (at the images' own scale: a field that is 95 %
    # interstitium has no epithelium to estimate its SRS level from, field_srs_gain)
    q = quantify_field(lip, pro, shg, pixel_um=PX, min_area_um2=500.0,
                       tubule_options={"srs_gain": 1.0})
    assert q.n_tubules == 1 and q.rows[0]["touches_border"]


def test_leydig_cluster_is_not_a_tubule():
    # a lipid-rich cell cluster in SHG-positive (fibrotic) interstitium passes the ring test;
    # the Leydig lipid rule rejects it, and without the rule it would be taken
    # (at the images' own scale: a cluster as large as the tubule's epithelium would
    # dominate the field's SRS level, field_srs_gain)
    lip, pro, shg, (disk,) = draw((180, 240), [(70, 90, 60, 8, 15, 0)],
                                  blobs=[(185, 90, 40)], shg_fibrosis=0.1)
    tub = segment_tubules(pro, shg, lip, pixel_um=PX, srs_gain=1.0)
    assert tub.max() == 1
    j, m = only_match(tub, disk)
    assert 2 * (m & disk).sum() / (m.sum() + disk.sum()) > 0.97
    loose = segment_tubules(pro, shg, lip, pixel_um=PX, leydig_lipid=1.0, srs_gain=1.0)
    assert loose.max() == 2


@settings(max_examples=12, deadline=None)
@given(st.floats(0.35, 2.5), st.integers(0, 2**16))
def test_tubules_do_not_depend_on_the_fields_srs_scale(g, seed):
    """Section thickness, focus and the session's SRS gain scale both SRS channels of a
    field together (by ~3x between patients): the tubule map must not change."""
    lip, pro, shg, disks = draw((180, 240), [(60, 90, 58, 6, 15, 0), (176, 90, 58, 6, 15, 0)],
                                seed=seed)
    ref = segment_tubules(pro, shg, lip, pixel_um=PX)
    assert ref.max() == 2
    scaled = segment_tubules(np.float32(g) * pro, shg, np.float32(g) * lip, pixel_um=PX)
    assert scaled.max() == 2
    assert (scaled > 0).sum() == pytest.approx((ref > 0).sum(), rel=0.01)
    assert ((scaled > 0) == (ref > 0)).mean() > 0.995


def test_fixed_scale_fails_on_a_dim_field_that_the_estimated_gain_rescues():
    lip, pro, shg, disks = draw((180, 240), [(60, 90, 58, 6, 15, 0), (176, 90, 58, 6, 15, 0)])
    dim_pro, dim_lip = np.float32(0.4) * pro, np.float32(0.4) * lip
    assert segment_tubules(dim_pro, shg, dim_lip, pixel_um=PX, srs_gain=1.0).max() == 0
    assert segment_tubules(dim_pro, shg, dim_lip, pixel_um=PX).max() == 2
    # the explicit gain that undoes the dimming works too
    assert segment_tubules(dim_pro, shg, dim_lip, pixel_um=PX, srs_gain=2.5).max() == 2


def test_field_srs_gain_is_one_without_shg_free_tissue():
    from scipy import ndimage

    lip, pro, shg, _ = draw((60, 60), [], shg_fibrosis=0.2)
    g = field_srs_gain(ndimage.gaussian_filter(pro, 3), ndimage.gaussian_filter(shg, 3),
                       free_shg=0.02)
    assert g == 1.0


# ----------------------------------------------------------------------------- droplets
@settings(max_examples=15)
@given(radius=st.floats(1.0, 3.0), intensity=st.floats(0.4, 1.4), count=st.integers(1, 12),
       seed=st.integers(0, 2**16))
def test_drawn_droplets_give_the_drawn_indexes(radius, intensity, count, seed):
    lip, pro, shg, (disk,) = draw((180, 180), [(90, 90, 70, 6, 20, 0)], seed=seed)
    # droplets on a ring inside the epithelium (between lumen 20 um and wall 64 um),
    # evenly spread so that none touch
    rng = np.random.default_rng(seed)
    phi0 = rng.uniform(0, 2 * np.pi)
    rho = rng.uniform(30.0, 55.0)
    ang = phi0 + 2 * np.pi * np.arange(count) / count
    centres = [(90 + rho * np.cos(a), 90 + rho * np.sin(a)) for a in ang]
    drawn = paint_droplets(lip, centres, radius, intensity)
    # one Leydig-cell droplet outside the ring: in the droplet mask, in no tubule
    leydig = paint_droplets(lip, [(172, 10)], 2.0, 0.9)
    q = quantify_field(lip, pro, shg, pixel_um=PX)
    assert q.n_tubules == 1
    assert q.droplets[leydig].all()
    assert (q.droplets == (drawn | leydig)).all()
    row = q.rows[0]
    n_tub = (q.tubules == row["tubule_id"]).sum()
    assert row["ld_count"] == count
    assert row["ld_area_percent"] == pytest.approx(100.0 * drawn.sum() / n_tub, rel=1e-9)
    assert row["ld_mean_intensity"] == pytest.approx(intensity, rel=1e-6)
    # and the closed form: drawn area / disc area, within the segmentation's area error
    assert row["ld_area_percent"] == pytest.approx(100.0 * drawn.sum() / disk.sum(), rel=0.02)


def test_tubule_without_droplets_has_nan_intensity():
    lip, pro, shg, _ = draw((180, 180), [(90, 90, 70, 6, 20, 0)])
    paint_droplets(lip, [(170, 170)], 2.0, 0.9)  # interstitial (Leydig) droplet only
    q = quantify_field(lip, pro, shg, pixel_um=PX)
    row = q.rows[0]
    assert row["ld_count"] == 0 and row["ld_area_percent"] == 0.0
    assert math.isnan(row["ld_mean_intensity"])
    assert q.droplets.sum() > 0


def test_indexes_by_hand():
    lip = np.zeros((10, 12), np.float32)
    tub = np.zeros((10, 12), np.int64)
    tub[0:5, 0:6] = 7        # 30 px, touches the border
    tub[5:9, 6:11] = 3       # 20 px, inside
    ld = np.zeros((10, 12), bool)
    ld[1, 1] = ld[1, 2] = True  # one droplet in 7
    lip[1, 1], lip[1, 2] = 0.5, 0.7
    ld[3, 4] = True  # another in 7
    lip[3, 4] = 1.2
    ld[9, 0] = True  # outside every tubule
    lip[9, 0] = 5.0
    rows = tubule_indexes(lip, tub, ld, pixel_um=2.0, min_area_um2=0.0)
    assert [r["tubule_id"] for r in rows] == [3, 7]
    r3, r7 = rows
    assert r7["area_um2"] == 120.0 and r7["ld_count"] == 2 and r7["touches_border"]
    assert r7["ld_area_percent"] == pytest.approx(10.0)
    assert r7["ld_mean_intensity"] == pytest.approx((0.5 + 0.7 + 1.2) / 3)
    assert r7["centroid_x_um"] == pytest.approx(6.0) and r7["centroid_y_um"] == pytest.approx(5.0)
    assert r3["ld_count"] == 0 and math.isnan(r3["ld_mean_intensity"])
    assert r3["touches_border"] is False
    # the minimum area drops the smaller tubule
    assert [r["tubule_id"] for r in tubule_indexes(lip, tub, ld, pixel_um=2.0,
                                                   min_area_um2=100.0)] == [7]


def test_droplet_methods():
    rng = np.random.default_rng(1)
    centres = [(8 + 13 * (i % 9), 8 + 13 * (i // 9)) for i in range(72)]   # 9 x 8 grid
    flat = (0.06 + rng.normal(0, 0.01, (200, 200))).astype(np.float32)
    truth = paint_droplets(flat, centres, 1.5, 0.6)          # ~4 % of the field
    assert (segment_droplets(flat, pixel_um=PX) == truth).all()
    assert not segment_droplets(flat, pixel_um=PX, threshold=0.7).any()
    t = droplet_threshold(flat)
    assert flat[~truth].max() <= t < 0.6   # separates the background from the droplets
    assert (segment_droplets(flat, pixel_um=PX, method="otsu") == truth).all()
    # local background: droplets on a ramp that crosses the fixed threshold
    ramp = (flat + np.linspace(0.0, 0.3, 200, dtype=np.float32)[None, :]).astype(np.float32)
    truth_r = paint_droplets(ramp, centres, 1.5, 0.75)
    assert segment_droplets(ramp, pixel_um=PX)[~truth_r].sum() > 1000   # fixed fails here
    assert (segment_droplets(ramp, pixel_um=PX, method="local") == truth_r).all()
    # min area: 1.5 um discs are ~21 px = 7.6 um^2; a single bright pixel is dropped
    flat[190, 190] = 0.9
    assert segment_droplets(flat, pixel_um=PX)[190, 190]
    kept = segment_droplets(flat, pixel_um=PX, min_area_um2=1.0)
    assert not kept[190, 190] and (kept == truth).all()


# ----------------------------------------------------------------------------- scoring
def test_tubule_dice():
    truth = np.zeros((40, 50), np.int64)
    truth[0:20, 0:20] = 1000
    truth[20:40, 25:50] = 2000
    truth[30:32, 0:2] = 3000                     # 4 px: below the minimum, not scored
    pred = np.zeros_like(truth)
    pred[0:20, 0:20] = 5                         # exact
    pred[20:40, 25:45] = 9                       # 400 of 500 px
    res = tubule_dice(pred, truth, pixel_um=1.0, min_area_um2=10.0)
    assert [r["truth_id"] for r in res] == [1000, 2000]
    assert res[0]["pred_id"] == 5 and res[0]["dice"] == 1.0 and res[0]["iou"] == 1.0
    assert res[1]["pred_id"] == 9
    assert res[1]["dice"] == pytest.approx(2 * 400 / 900)
    assert res[1]["iou"] == pytest.approx(400 / 500)
    assert res[0]["touches_border"] and res[1]["touches_border"]
    missing = tubule_dice(np.zeros_like(truth), truth, pixel_um=1.0, min_area_um2=10.0)
    assert [(r["pred_id"], r["dice"], r["iou"]) for r in missing] == [(0, 0.0, 0.0)] * 2


def test_overlay_png(tmp_path):
    lip, pro, shg, _ = draw((120, 150), [(60, 60, 55, 6, 15, 0)])
    paint_droplets(lip, [(60, 30), (40, 80)], 1.5, 0.8)
    q = quantify_field(lip, pro, shg, pixel_um=PX)
    p = quant_overlay_png(tmp_path / "sub" / "overlay.png", lip, pro, shg, q)
    data = p.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert not list(tmp_path.joinpath("sub").glob("*.tmp"))
    with pytest.raises(QuantError, match="do not match"):
        quant_overlay_png(tmp_path / "x.png", lip[:-1], pro[:-1], shg[:-1], q)
    with pytest.raises(QuantError, match="full_scale"):
        quant_overlay_png(tmp_path / "x.png", lip, pro, shg, q, full_scale=(1.0, 0.0, 1.0))
    assert not (tmp_path / "x.png").exists()


# ----------------------------------------------------------------------------- errors
def test_errors():
    lip, pro, shg, _ = draw((60, 60), [(30, 30, 25, 5, 5, 0)], noise=False)
    with pytest.raises(QuantError, match="different shapes"):
        quantify_field(lip, pro[:-1], shg, pixel_um=PX)
    with pytest.raises(QuantError, match="2-D"):
        quantify_field(lip[None], pro, shg, pixel_um=PX)
    bad = lip.copy()
    bad[3, 4] = np.nan
    with pytest.raises(QuantError, match="NaN"):
        quantify_field(bad, pro, shg, pixel_um=PX)
    with pytest.raises(QuantError, match="NaN"):
        segment_tubules(pro, shg, bad, pixel_um=PX)
    for px in (0.0, -0.3, float("nan")):
        with pytest.raises(QuantError, match="pixel_um"):
            quantify_field(lip, pro, shg, pixel_um=px)
    with pytest.raises(QuantError, match="method"):
        segment_droplets(lip, pixel_um=PX, method="watershed")
    with pytest.raises(QuantError, match="automatic"):
        segment_droplets(lip, pixel_um=PX, method="otsu", threshold=0.3)
    for t in (0.0, -1.0):
        with pytest.raises(QuantError, match="threshold"):
            segment_droplets(lip, pixel_um=PX, threshold=t)
    with pytest.raises(QuantError, match="free_shg"):
        segment_tubules(pro, shg, lip, pixel_um=PX, free_shg=0.1, wall_shg=0.05)
    with pytest.raises(QuantError, match="tubule_options"):
        quantify_field(lip, pro, shg, pixel_um=PX, tubule_options={"bogus": 1})
    with pytest.raises(QuantError, match="automatic"):
        quantify_field(lip, pro, shg, pixel_um=PX, ld_method="local", ld_threshold=0.3)
    with pytest.raises(QuantError, match="integer"):
        tubule_indexes(lip, lip, lip > 0.5, pixel_um=PX)
    with pytest.raises(QuantError, match="same field shape"):
        tubule_dice(np.zeros((4, 4), int), np.zeros((4, 5), int))
    # an empty field (interstitium only): the message says what was looked for
    e_lip, e_pro, e_shg, _ = draw((120, 120))
    with pytest.raises(QuantError, match=r"SHG-free epithelium.*SHG ring"):
        quantify_field(e_lip, e_pro, e_shg, pixel_um=PX)
    assert isinstance(QuantError("x"), ValueError)


def test_defaults_and_result_type():
    lip, pro, shg, _ = draw((180, 180), [(90, 90, 70, 6, 20, 0)])
    q = quantify_field(lip, pro, shg, pixel_um=PX)
    assert isinstance(q, FieldQuant)
    assert q.ld_method == "fixed" and q.ld_threshold == DEFAULT_LD_THRESHOLD
    assert q.tubules.dtype == np.int32 and q.droplets.dtype == np.bool_
    assert set(q.rows[0]) == {"tubule_id", "area_um2", "ld_count", "ld_area_percent",
                              "ld_mean_intensity", "touches_border", "centroid_x_um",
                              "centroid_y_um"}
    qo = quantify_field(lip, pro, shg, pixel_um=PX, ld_method="otsu")
    assert qo.ld_method == "otsu" and 0.0 < qo.ld_threshold < 1.0


# ----------------------------------------------------------------------------- simulated
@pytest.mark.parametrize("seed, dx, dy, min_dice", [
    # the field is placed relative to the near-transverse complete tubule nearest the
    # section centre (tubules are packed without a lattice: a fixed offset may be
    # interstitium), so that it holds wall, epithelium and droplets of a border-cut tubule
    # the issue-14 simulator (lamellated walls, interstitial objects) made the segmentation
    # harder: seed 2 measured Dice 0.926; held-out cohort median 0.962, mean 0.855
    # (docs/ld_quantification.md)
    (2, -60.0, 40.0, 0.90),
    (3, 50.0, 45.0, 0.90),
])
def test_simulated_normal_field_matches_truth(seed, dx, dy, min_dice):
    from ml.io.processed import process_field
    from simulators.instrument import build_simulator
    from simulators.specimens import make_specimen
    from simulators.specimens.base import Label

    spec = make_specimen("testis", seed, phenotype="normal")
    x0, x1, y0, y1 = spec.extent_um
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    t = min((t for t in spec.tubules_in(cx - 800, cx + 800, cy - 800, cy + 800)
             if t.state == "complete" and t.axis_ratio < 1.3),
            key=lambda t: math.hypot(t.cx_um - cx, t.cy_um - cy))
    sim = build_simulator(spec, pixels=400, fov_um=120.0, x_um=t.cx_um + dx,
                          y_um=t.cy_um + dy)
    rng = np.random.default_rng(0)
    field = sim.field(rng)
    pf = process_field(sim, field, rng)
    names = pf.channel_names
    nominal = np.asarray(field.nominal_shifts_cm1)
    il, ip = int(np.argmin(abs(nominal - 2850))), int(np.argmin(abs(nominal - 2930)))
    lipid = pf.data[il] / pf.references_v[names[il]]
    protein = pf.data[ip] / pf.references_v[names[ip]]
    shg = pf.data[-1] / pf.references_v["SHG"]
    truth = field.truth.instance
    assert truth.shape == lipid.shape
    q = quantify_field(lipid, protein, shg, pixel_um=field.window.pixel_um)
    scores = tubule_dice(q.tubules, truth, pixel_um=field.window.pixel_um)
    assert scores and min(s["dice"] for s in scores) >= min_dice
    inside = truth > 0
    ld_truth = (field.truth.labels == Label.LIPID_DROPLET) & inside
    ld_pred = q.droplets & inside
    assert 2 * (ld_pred & ld_truth).sum() / (ld_pred.sum() + ld_truth.sum()) >= 0.9
    row = q.rows[0]
    # normal testis: LDs of ~1-4 % of the tubule, mean intensity ~0.4-0.6 of pure lipid
    assert 0.5 < row["ld_area_percent"] < 4.0
    assert 0.35 < row["ld_mean_intensity"] < 0.7


@settings(max_examples=8, deadline=None)
@given(st.floats(0.35, 2.5))
def test_estimated_gain_is_the_one_segment_tubules_applies_and_scales_inversely(g):
    lip, pro, shg, _ = draw((180, 240), [(60, 90, 58, 6, 15, 0), (176, 90, 58, 6, 15, 0)])
    gain = estimate_srs_gain(pro, shg, pixel_um=PX)
    assert np.array_equal(segment_tubules(pro, shg, lip, pixel_um=PX),
                          segment_tubules(pro, shg, lip, pixel_um=PX, srs_gain=gain))
    scaled = estimate_srs_gain(np.float32(g) * pro, shg, pixel_um=PX)
    assert scaled == pytest.approx(gain / g, rel=1e-4)
