"""Named segmenters, their weights files and the Raman-axis guard (ml.seg.models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.common.weights import WeightsError, save_weights
from ml.seg.models import (
    SEGMENTERS,
    SegModelError,
    build_segmenter,
    labels_from_masks,
    load_segmenter,
    save_segmenter,
    segmenter_input,
)
from ml.seg.phasor import BACKGROUND, CYTOPLASM, LIPID_DROPLET, NUCLEUS
from plans.contract import TRUTH_LABELS


@pytest.mark.parametrize("name", list(SEGMENTERS))
def test_save_load_roundtrip_gives_the_same_outputs(name, tmp_path):
    torch.manual_seed(0)
    axis = np.arange(2800.0, 2800.0 + 8 * 10, 10)
    model = build_segmenter(name, axis.size).eval()
    path = save_segmenter(model, tmp_path / f"{name}.pt", name=name, raman_cm1=axis,
                          meta={"cohort": "c"})
    loaded, meta = load_segmenter(path)
    assert meta["segmenter"] == name and meta["raman_cm1"] == axis.tolist()
    assert meta["cohort"] == "c" and type(loaded) is type(model)
    x = torch.rand(1, 1, axis.size, 32, 32)  # nnU-Net instance norm needs >1 px at 1/16
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))


def test_ablations_switch_off_exactly_one_module():
    flags = {n: build_segmenter(n, 8).flags for n in SEGMENTERS if n.startswith("hybrid")}
    assert flags["hybrid-unet"] == {"msr": True, "spectral_compression": True,
                                    "attention_skips": True}
    for name, off in (("hybrid-no-msr", "msr"), ("hybrid-no-compression",
                                                  "spectral_compression"),
                      ("hybrid-no-attention", "attention_skips")):
        assert [k for k, v in flags[name].items() if not v] == [off]


def test_unknown_name_and_foreign_weights_are_refused(tmp_path):
    with pytest.raises(SegModelError, match="expected one of hybrid-unet"):
        build_segmenter("resnet", 8)
    path = save_weights(torch.nn.Linear(2, 2), tmp_path / "lbnet.pt", meta={"task": "x"})
    with pytest.raises(WeightsError, match="holds no segmenter"):
        load_segmenter(path)
    with pytest.raises(WeightsError, match="does not exist"):
        load_segmenter(tmp_path / "missing.pt")


def test_same_axis_passes_unchanged():
    s = np.random.default_rng(0).random((6, 4, 5)).astype(np.float32)
    ax = np.linspace(2800, 3050, 6)
    assert np.array_equal(segmenter_input(s, ax + 0.2, ax), s)


@settings(max_examples=40, deadline=None)
@given(st.floats(2700, 2800), st.floats(3050, 3200), st.integers(5, 80),
       st.floats(-2, 2), st.floats(-0.01, 0.01))
def test_interpolation_is_exact_for_spectra_linear_in_shift(lo, hi, n, a, b):
    """Linear interpolation reproduces any spectrum a + b * shift on the training axis."""
    ax = np.linspace(lo, hi, n)
    train = np.linspace(2800, 3050, 11)
    spec = a + b * ax
    s = np.broadcast_to(spec[:, None, None], (n, 2, 3)).astype(np.float32)
    out = segmenter_input(s[::-1], ax[::-1], train)  # decreasing input axis is sorted
    np.testing.assert_allclose(out[:, 0, 0], a + b * train, rtol=1e-4, atol=1e-4)


def test_axis_not_covering_training_range_is_refused():
    s = np.zeros((5, 2, 2), np.float32)
    with pytest.raises(SegModelError, match="trained on 2800.0-3050.0"):
        segmenter_input(s, np.linspace(2850, 3050, 5), np.linspace(2800, 3050, 11))
    with pytest.raises(SegModelError, match="one shift per band"):
        segmenter_input(s, np.linspace(2800, 3050, 4), np.linspace(2800, 3050, 11))


def test_labels_from_masks_precedence():
    intensity = np.zeros((4, 4))
    intensity[:, 2:] = 1.0  # right half is cell
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2, :] = True  # nucleus on the top rows
    masks[1, 0, 0] = masks[0, 0, 0] = True  # droplet wins over nucleus
    lab = labels_from_masks(masks, intensity)
    assert lab[0, 0] == LIPID_DROPLET and lab[1, 0] == NUCLEUS
    assert lab[3, 3] == CYTOPLASM and lab[3, 0] == BACKGROUND
    # the truth vocabulary, code for code
    assert (lab[0, 0], lab[1, 0], lab[3, 3], lab[3, 0]) == tuple(
        TRUTH_LABELS[n] for n in ("lipid_droplet", "nucleus", "cytoplasm", "background"))
    with pytest.raises(SegModelError, match=r"expected \(2, H, W\)"):
        labels_from_masks(masks[:1], intensity)
