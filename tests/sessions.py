"""Small in-process sessions for tests: a testis microscope into a temporary catalog, and a
mosaic around the stage's current position."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from srash_ophyd.session import Session, make_session


def small_session(data_dir: Path, *, seed: int = 1, pixels: int = 48) -> Session:
    """A 30 um field, ``pixels`` per side, no progress bar, no suspenders."""
    return make_session(data_dir=data_dir, specimen="testis", phenotype="normal", seed=seed,
                        noise_seed=seed, progress=False, suspenders=False, pixels=pixels,
                        fov_um=30.0, averages=1)


def here_mosaic(s: Session, rows: int = 2, cols: int = 2, *, overlap: float = 0.25,
                **md: Any):
    """``plans.mosaic`` of ``rows x cols`` 30 um fields around the stage's position."""
    m = s.mic
    return s.plans.mosaic([m], m.raman, m.xyz.x, m.xyz.y, rows=rows, cols=cols, fov_um=30.0,
                          overlap=overlap, center_um=(m.sim.stage.position["x"],
                                                      m.sim.stage.position["y"]),
                          md=s.run_md(**md))
