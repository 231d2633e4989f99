"""The device factory gives hyperspectral stacks of the cells specimen the registration
walk (issue 15) and leaves every other specimen's scanner as it was."""

from __future__ import annotations

from simulators.parts.scanner import HYPERSPECTRAL_WALK_PX, ScannerConfig
from srash_ophyd.devices.factory import make_microscope


def test_cells_get_the_walk_and_testis_does_not(tmp_path):
    cells = make_microscope("cells", seed=1, data_dir=tmp_path / "c", pixels=32, fov_um=20.0)
    assert cells.sim.scanner.config.registration_walk_px == HYPERSPECTRAL_WALK_PX > 0
    beads = make_microscope("beads", seed=1, data_dir=tmp_path / "b", pixels=32, fov_um=20.0)
    assert beads.sim.scanner.config.registration_walk_px == 0.0
    own = make_microscope("cells", seed=1, data_dir=tmp_path / "o", pixels=32, fov_um=20.0,
                          scanner=ScannerConfig(registration_walk_px=0.0))
    assert own.sim.scanner.config.registration_walk_px == 0.0
