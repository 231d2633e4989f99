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
