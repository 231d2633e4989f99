"""The segmentation workflows (ml.seg.workflow) on small simulated stacks: the stack split
partitions, training writes weights whose provenance matches the split, evaluation scores
every method on every stack, and one stack's segmentation accounts for every pixel."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ml.io.stacks import Stack
from ml.seg.models import load_segmenter
from ml.seg.phasor import CLASS_NAMES
from ml.seg.train import SegConfig
from ml.seg.workflow import (
    PhasorSettings,
    Segmenter,
    SegTrainSettings,
    SegWorkflowError,
    common_axis,
    dice_stats,
    evaluate_seg,
    segment_stack,
    split_stacks,
    train_seg,
)

SHIFTS = np.arange(2800.0, 3050.1, 25.0)  # 11 bands, as `srash cohort --specimen cells`


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _stack(seed: int, pixels: int = 64, fov_um: float = 30.0) -> tuple[Stack, np.ndarray]:
    """A processed simulated cell stack with its truth labels."""
    from ml.io.processed import process_field
    from simulators.instrument import build_simulator
    from simulators.specimens import make_specimen

    spec = make_specimen("cells", seed)
    cx, cy = spec.first_cell_center()
    sim = build_simulator(spec, pixels=pixels, fov_um=fov_um, x_um=cx, y_um=cy, averages=1)
    rng = np.random.default_rng(seed)
    field = sim.stack(rng, SHIFTS)
    proc = process_field(sim, field, rng)
    start = {"uid": f"stack-{seed:04d}-uid", "specimen_seed": seed, "sample_id": f"S{seed}"}
    return (Stack(data=np.asarray(proc.data, np.float32),
                  raman_cm1=np.asarray(field.raman_shifts_cm1, np.float64), pixel_um=None,
                  start=start), np.asarray(field.truth.labels))


@pytest.fixture(scope="module")
def cohort():
    pairs = [_stack(seed) for seed in (11, 12, 13)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


# ----------------------------------------------------------------------------- pure parts
@given(st.integers(2, 60), st.floats(0.01, 0.99), st.integers(0, 2**31))
def test_split_stacks_partitions_with_both_sides_non_empty(n, frac, seed):
    tr, va = split_stacks(n, frac, seed=seed)
    assert sorted(tr + va) == list(range(n)) and tr and va
    assert (tr, va) == split_stacks(n, frac, seed=seed)


def test_split_and_axis_errors_are_ml_errors():
    with pytest.raises(SegWorkflowError, match="training needs >= 2"):
        split_stacks(1, 0.2, seed=0)
    with pytest.raises(SegWorkflowError, match="val_fraction"):
        split_stacks(5, 1.0, seed=0)
    a = Stack(np.zeros((3, 4, 4), np.float32), np.array([1.0, 2.0, 3.0]), None, {"uid": "a"})
    b = Stack(np.zeros((3, 4, 4), np.float32), np.array([1.0, 2.0, 4.0]), None, {"uid": "b"})
    assert np.array_equal(common_axis([a, a]), a.raman_cm1)
    with pytest.raises(SegWorkflowError, match="different Raman axes"):
        common_axis([a, b])
    with pytest.raises(SegWorkflowError):
        SegTrainSettings(model="no-such-net")


def test_dice_stats_bounds():
    s = dice_stats([{"nucleus": 0.9, "lipid_droplet": 0.4},
                    {"nucleus": 0.7, "lipid_droplet": 0.6}])
    assert s["nucleus"]["min"] == 0.7 and s["nucleus"]["mean"] == pytest.approx(0.8)
    assert dice_stats([{"nucleus": 0.5, "lipid_droplet": 0.5}])["nucleus"]["sd"] == 0.0


# ----------------------------------------------------------------------------- workflows
def test_train_then_evaluate_seg(cohort, tmp_path):
    stacks, labels = cohort
    cfg = SegConfig(epochs=1, crop_size=32, crops_per_stack=2, batch_size=2, seed=3)
    epochs: list[str] = []
    res = train_seg(stacks, labels, settings=SegTrainSettings(model="unet2d", config=cfg,
                                                              cohort="tr"),
                    weights_path=tmp_path / "w.pt", report_dir=tmp_path / "rep",
                    report_extra={"skipped_runs": []},
                    progress=lambda stage, rec: epochs.append(stage))
    assert epochs == ["epoch"]
    assert sorted(res.train_index + res.val_index) == [0, 1, 2]
    assert res.summary["stacks"] == {"train": len(res.train_index),
                                     "validation": len(res.val_index)}
    assert res.meta["train_runs"] == [stacks[i].start["uid"] for i in res.train_index]
    assert res.meta["specimen_seeds"] == [11, 12, 13] and res.summary["bands"] == 11
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["cohort"] == "tr" and report["skipped_runs"] == []
    model, meta = load_segmenter(tmp_path / "w.pt")
    assert meta["segmenter"] == "unet2d" and meta["raman_cm1"] == list(SHIFTS)

    seg = Segmenter(tmp_path / "w.pt", model, meta)
    seen: list[int] = []
    ev = evaluate_seg(stacks, labels, [seg, seg], report_dir=tmp_path / "ev", cohort="ho",
                      progress=lambda stage, rec: seen.append(rec["index"]))
    assert seen == [0, 1, 2] and ev["stacks"] == 3
    # a name already taken becomes the weights path
    assert list(ev["dice"]) == ["phasor", "two_band", "unet2d", str(tmp_path / "w.pt")]
    # the two-band baseline's thresholds come from training; vs-phasor Dice kept apart
    assert set(meta["two_band"]) == {"t_cell", "t_ratio", "t_droplet"}
    assert list(ev["dice_vs_phasor"]) == ["two_band", "unet2d", str(tmp_path / "w.pt")]
    for key in ("dice", "dice_vs_phasor"):
        per = ev["per_stack" if key == "dice" else "per_stack_vs_phasor"]
        for name, d in ev[key].items():
            assert len(per[name]) == 3
            for cls in ("nucleus", "lipid_droplet"):
                assert 0.0 <= d[cls]["min"] <= d[cls]["mean"] <= 1.0
    for path in ev["images"].values():
        with open(path, "rb") as fh:
            assert fh.read(4) == b"\x89PNG"
    assert json.loads((tmp_path / "ev" / "report.json").read_text())["cohort"] == "ho"


def test_segment_one_stack_accounts_for_every_pixel_and_publishes(cohort, tmp_path):
    stacks, labels = cohort
    st0, truth = stacks[0], labels[0]
    docs: list[tuple[str, dict]] = []
    res = segment_stack(st0, phasor=PhasorSettings(seed=1), truth=truth, report_dir=tmp_path,
                        publish=lambda name, doc: docs.append((name, doc)))
    h, w = truth.shape
    assert sum(res["pixels"].values()) == h * w and set(res["pixels"]) == set(
        CLASS_NAMES.values())
    assert all(0.0 <= v <= 1.0 for v in res["dice"].values())
    assert [n for n, _ in docs] == ["start", "descriptor", "event", "stop"]
    start, event = docs[0][1], docs[2][1]
    assert start["scan_uid"] == st0.start["uid"] and start["params"]["seed"] == 1
    assert res["analysis_uid"] == start["uid"]
    labels_stored = np.asarray(event["data"]["labels"])
    assert {name: int((labels_stored == c).sum()) for c, name in CLASS_NAMES.items()} == \
        res["pixels"]
    assert set(res["images"]) == {"labels", "phasor"}
    # without truth (or truth of another shape): no Dice; hybrid-unet needs a segmenter
    assert segment_stack(st0, truth=truth[:10], report_dir=tmp_path)["dice"] is None
    with pytest.raises(SegWorkflowError, match="needs a segmenter"):
        segment_stack(st0, method="hybrid-unet", report_dir=tmp_path)
