"""Build a complete simulated SRASH instrument around a specimen in one call."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from simulators.instrument import AcquisitionConfig, ResponseConfig, build_simulator
from simulators.specimens import make_specimen
from simulators.specimens.base import Specimen

from ..errors import SrashError
from .microscope import SRASHMicroscope

__all__ = ["make_microscope"]


def make_microscope(specimen: str | Specimen = "testis", phenotype: str | None = None,
                    seed: int = 0, noise_seed: int = 0, data_dir: str | Path | None = None,
                    time_scale: float = 0.0, name: str = "srash",
                    response: ResponseConfig | None = None,
                    acquisition: AcquisitionConfig | None = None,
                    control: str = "sim", prefix: str = "SRASH:",
                    connect_timeout_s: float = 10.0,
                    **scan_settings: Any) -> Any:
    """A simulated :class:`SRASHMicroscope` (its simulator is ``.sim``), or with
    ``control="epics"`` an :class:`~srash_ophyd.devices.epics.EpicsSRASHMicroscope` on the
    IOC of PV prefix ``prefix`` (``srash ioc``), connected.

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
    control : {"sim", "epics"}
        In-process simulators, or Channel Access to an IOC (the specimen, seeds, response
        and acquisition are then the IOC's; ``scan_settings`` are put to its scanner and
        stage, ``time_scale`` to its ``TimeScale``).
    prefix : str
        The IOC's PV prefix (``control="epics"``).
    connect_timeout_s : float
        How long to wait for the IOC's PVs (``control="epics"``).
    **scan_settings
        Passed to :func:`simulators.instrument.build_simulator`: ``pixels``, ``fov_um``,
        ``dwell_s``, ``averages``, ``bidirectional``, ``pump_mw``, ``stokes_mw``,
        ``stokes_nm``, ``x_um``, ``y_um``.
    """
    if control == "epics":
        return _make_epics_microscope(prefix, name=name, data_dir=data_dir,
                                      time_scale=time_scale, timeout=connect_timeout_s,
                                      **scan_settings)
    if control != "sim":
        raise SrashError(f"control {control!r} not allowed: 'sim' (in-process simulators) or "
                         "'epics' (Channel Access to `srash ioc`)")
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


#: scan settings of :func:`make_microscope` -> (component path, unit factor) on the EPICS
#: microscope, put at connection
_EPICS_SETTINGS = {"pixels": ("scanner.pixels", 1), "fov_um": ("scanner.fov", 1.0),
                   "dwell_s": ("scanner.dwell", 1.0), "averages": ("scanner.averages", 1),
                   "bidirectional": ("scanner.bidirectional", None),
                   "pump_mw": ("pump.power", 1.0), "stokes_mw": ("stokes.power", 1.0)}


def _make_epics_microscope(prefix: str, *, name: str, data_dir: str | Path | None,
                           time_scale: float, timeout: float, **scan_settings: Any) -> Any:
    from ._sim import check_time_scale
    from .epics import EpicsSRASHMicroscope, ensure_control_layer

    check_time_scale(time_scale)
    unknown = set(scan_settings) - set(_EPICS_SETTINGS) - {"x_um", "y_um", "stokes_nm"}
    if unknown:
        raise SrashError(f"settings {sorted(unknown)} cannot be set over EPICS: allowed "
                         f"{sorted(_EPICS_SETTINGS) + ['x_um', 'y_um']}")
    if scan_settings.get("stokes_nm") is not None:
        raise SrashError("stokes_nm is fixed by the IOC's Stokes laser; start `srash ioc` "
                         "with the simulator you want")
    ensure_control_layer()
    if data_dir is None:
        data_dir = tempfile.mkdtemp(prefix=f"{name}-frames-")
    mic = EpicsSRASHMicroscope(prefix, name=name, data_dir=Path(data_dir))
    mic.connect(timeout=timeout)
    mic.time_scale = time_scale
    for key, (path, kind) in _EPICS_SETTINGS.items():
        if scan_settings.get(key) is None:
            continue
        obj = mic
        for part in path.split("."):
            obj = getattr(obj, part)
        value = scan_settings[key]
        obj.put(bool(value) if kind is None else type(kind)(value))
    # x_um / y_um are not moved to: a move draws the stage's repeatability on the IOC, and
    # the in-process simulator places its stage there without one (plans move anyway)
    return mic
