"""Build a complete simulated SRASH instrument around a specimen in one call."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from simulators.instrument import AcquisitionConfig, ResponseConfig, build_simulator
from simulators.specimens import make_specimen
from simulators.specimens.base import Specimen

from .microscope import SRASHMicroscope

__all__ = ["make_microscope"]


def make_microscope(specimen: str | Specimen = "testis", phenotype: str | None = None,
                    seed: int = 0, noise_seed: int = 0, data_dir: str | Path | None = None,
                    time_scale: float = 0.0, name: str = "srash",
                    response: ResponseConfig | None = None,
                    acquisition: AcquisitionConfig | None = None,
                    **scan_settings: Any) -> SRASHMicroscope:
    """A simulated :class:`SRASHMicroscope` (its simulator is ``.sim``).

    Parameters
    ----------
    specimen : str or Specimen
        ``testis``, ``cells``, ``beads``, ``reference`` (built with ``seed`` and
        ``phenotype``) or a ready specimen object.
    phenotype : str, optional
        Testis phenotype (normal, NOA-SPT, NOA-SPG, NOA-SCO).
    seed : int
        Specimen seed (the tissue).
    noise_seed : int
        Seeds the frame noise, the stage repeatability and the instrument session (SRS
        gain, SHG yield, slow drifts): same seeds + same operations -> identical frames.
    data_dir : path, optional
        Folder for the OME-TIFF frames; default a new temporary folder.
    time_scale : float
        0 = instant; > 0 = statuses finish after ``time_scale x`` real instrument time.
    name : str
        Device name, prefix of every data key (``srash_image``, ``srash_raman``...).
    acquisition : AcquisitionConfig, optional
        Session variability (default realistic; ``AcquisitionConfig.ideal()`` for none).
    **scan_settings
        Passed to :func:`simulators.instrument.build_simulator`: ``pixels``, ``fov_um``,
        ``dwell_s``, ``averages``, ``bidirectional``, ``pump_mw``, ``stokes_mw``,
        ``stokes_nm``, ``x_um``, ``y_um``.
    """
    spec = specimen if isinstance(specimen, Specimen) else make_specimen(
        specimen, seed, phenotype=phenotype)
    if spec.kind == "cells" and "scanner" not in scan_settings:
        # hyperspectral stacks drift over the sweep (issue 15)
        from simulators.parts.scanner import HYPERSPECTRAL_WALK_PX, ScannerConfig

        scan_settings["scanner"] = ScannerConfig(registration_walk_px=HYPERSPECTRAL_WALK_PX)
    sim = build_simulator(spec, response=response, acquisition=acquisition,
                          session_seed=noise_seed, **scan_settings)
    if data_dir is None:
        data_dir = tempfile.mkdtemp(prefix=f"{name}-frames-")
    return SRASHMicroscope(name=name, sim=sim, data_dir=Path(data_dir), time_scale=time_scale,
                           noise_seed=noise_seed)
