"""studies.montage: the crop stays inside the field and is centred where asked; the montage
PNG is written for every phenotype."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from studies.montage import PAPER_FIG2, PHENOTYPES, build, crop


@given(st.floats(-200, 200), st.floats(-200, 200), st.floats(5, 300))
def test_crop_is_clipped_to_the_field_and_centred(cx, cy, half):
    img = np.arange(3 * 90 * 90, dtype=np.float32).reshape(3, 90, 90)
    c = crop(img, (cx, cy), half, 360.0)
    assert c.shape[0] == 3 and c.shape[1] <= 90 and c.shape[2] <= 90
    if abs(cx) + half < 170 and abs(cy) + half < 170:  # fully inside: square, centred
        assert abs(c.shape[1] - c.shape[2]) <= 1
        assert abs(c.shape[2] - 2 * half / 4.0) <= 1.0


def test_montage_covers_every_phenotype(tmp_path):
    assert set(PAPER_FIG2) == set(PHENOTYPES)
    png = build(tmp_path, 70000, 96)
    assert png.read_bytes()[:4] == b"\x89PNG"
