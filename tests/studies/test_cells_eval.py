"""studies.cells_eval's parts: seed lists, one simulated stack, and the two protocols kept
apart (the phasor is never scored against its own labels)."""

from __future__ import annotations

import numpy as np

from studies.cells_eval import TEST_SEEDS, TRAIN_SEEDS, _seeds, _stats, simulate_stack


def test_seed_sets_are_disjoint_and_parse():
    assert not set(TRAIN_SEEDS) & set(TEST_SEEDS)
    assert _seeds("3-5") == (3, 4, 5) and _seeds("7,9") == (7, 9)


def test_simulated_stack_shapes_and_labels():
    x, r, lab = simulate_stack(1001, pixels=48, fov_um=20.0, averages=1,
                               shifts=np.array([2850.0, 2900.0, 2930.0, 2960.0]))
    assert x.shape == (4, 48, 48) and r.shape == (4,) and lab.shape == (48, 48)
    assert np.isfinite(x).all() and set(np.unique(lab)) <= {0, 2, 3, 4}
    # the field is centred on an in-focus cell: the centre pixel is labelled
    assert lab[24, 24] != 0


def test_stats_mean_sd_min():
    s = _stats([{"nucleus": 0.5, "lipid_droplet": 1.0}, {"nucleus": 0.7, "lipid_droplet": 0.0}])
    assert s["nucleus"] == {"mean": 0.6, "sd": 0.1414, "min": 0.5}
    assert s["lipid_droplet"]["min"] == 0.0


def test_weights_args_labels_and_held_out_seed_refusal(tmp_path):
    """``--weights [LABEL=]PATH``: the stem by default, the folder added when two stems
    clash, and weights trained on a held-out seed refused."""
    import pytest

    from ml.seg.models import build_segmenter, save_segmenter
    from studies.cells_eval import load_weights_args

    axis = np.arange(2800.0, 2860.1, 5.0)
    for sub, seeds in (("a", [1001, 1002]), ("b", [1003]), ("c", [1004, 70003])):
        (tmp_path / sub).mkdir()
        save_segmenter(build_segmenter("unet2d", axis.size), tmp_path / sub / "seg_unet2d.pt",
                       name="unet2d", raman_cm1=axis, meta={"specimen_seeds": seeds})
    got = load_weights_args([str(tmp_path / "a" / "seg_unet2d.pt"),
                             str(tmp_path / "b" / "seg_unet2d.pt"),
                             f"mine={tmp_path / 'a' / 'seg_unet2d.pt'}"], TEST_SEEDS)
    assert list(got) == ["seg_unet2d", "b/seg_unet2d", "mine"]
    assert got["mine"].meta["segmenter"] == "unet2d"
    with pytest.raises(SystemExit, match="held-out seed"):
        load_weights_args([str(tmp_path / "c" / "seg_unet2d.pt")], TEST_SEEDS)
    with pytest.raises(SystemExit, match="already taken"):
        load_weights_args([f"two_band={tmp_path / 'a' / 'seg_unet2d.pt'}"], TEST_SEEDS)
