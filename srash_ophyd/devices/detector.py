"""The SRASH image detector: one raster of the current field -> one 2-channel OME-TIFF.

On ``trigger()`` the scanner rasters the current field at the current settings through the
simulator chain (:meth:`simulators.instrument.SRASHSimulator.frame`): the lock-in frame (SRS, V)
and the PMT frame (SHG, V) are stacked as channels ``("SRS", "SHG")`` of one float32 array
``(channel, y, x)`` and written as one OME-TIFF per frame (:mod:`ml.io.omexml`: channel
names ``SRS_<shift>`` spelled by :func:`plans.contract.srs_channel` from the frame's
physical shift, and ``SHG``; acquisition date, lasers, detectors, objective, the pump
wavelength per channel, pixel size, stage position of the field's top-left corner and the
simulator's settings JSON), announced with StreamResource / StreamDatum documents:

- data key ``<base>_image`` (``<base>`` = the microscope's name, e.g. ``srash_image``):
  ``dtype "array"``, ``dtype_numpy "<f4"``, ``shape [2, ny, nx]``,
  ``dims ["channel", "y", "x"]``, ``external "STREAM:"``, ``units "V"``, plus
  ``channel_names ["SRS", "SHG"]`` (the detector's outputs, the same for every shift) and
  ``instrument`` (Stokes wavelength, pump range, repetition rate, objective: what exports
  write into their OME ``Instrument``);
- StreamResource: mimetype ``multipart/related;type=image/tiff``, ``uri`` = ``file://`` URI
  of a fresh folder ``<data_dir>/<stream resource uid>/`` (one per staging), parameters
  ``template "{:06d}.ome.tif"``, ``join_method "stack"``, ``chunk_shape [1]`` (one frame
  per file); one StreamDatum ``{start: i, stop: i + 1}`` per frame.

Scalars read with every frame (``<base>_<component>``): ``srs_mean`` / ``shg_mean`` (hinted,
V), the physical ``frame_raman_shift`` (cm^-1), ``frame_pump_nm``, ``frame_pump_mw`` /
``frame_stokes_mw`` (delivered powers, mW), ``frame_x`` / ``frame_y`` (field centre, stage
um), ``frame_number``. Configuration: ``channel_names``, ``max_overload_px``.

**Rebuilding the SRASH composite from documents** (a plan that triggers at 2850 and at
2930 cm^-1): take the event whose ``<base>_frame_raman_shift`` is nearest 2850 and the one
nearest 2930; their ``<base>_image[0]`` are SRS 2850 and SRS 2930 and ``<base>_image[1]`` of
the first is SHG (the StreamDatum of each event gives the file index; the file is
``uri + template.format(index)``).

**Faults** fail the trigger status with :class:`~srash_ophyd.devices._sim.DeviceFault` and write
nothing (the file index does not advance): pump mode-lock lost, PMT overlight trip,
more than ``max_overload_px`` overloaded lock-in pixels (default 0). A total power above the
safety limit fails it with :class:`~srash_ophyd.devices._sim.LaserSafetyError`. The frame
is kept as :attr:`SRASHDetector.last_frame` either way.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
from ophyd import Component as Cpt
from ophyd import Signal
from ophyd.status import DeviceStatus

from ml.io.ometiff import write_ome_tiff
from ml.io.omexml import Acquisition, instrument_from_settings
from plans.contract import DETECTOR_CHANNELS, SHG_CHANNEL, srs_channel
from simulators.instrument import FrameResult

from ._shared import FILE_TEMPLATE, MIMETYPE, FrameFiles
from ._sim import DeviceFault, SimDevice, complete_after, translate_limits

__all__ = ["CHANNEL_NAMES", "FILE_TEMPLATE", "MIMETYPE", "SRASHDetector", "frame_fault_message",
           "frame_scalars", "write_frame"]

CHANNEL_NAMES = DETECTOR_CHANNELS


def _disk_hint(folder: Path, nbytes: int, exc: OSError) -> str:
    """The write error, and "the disk is full" when that is why (tifffile reports a short
    write as "N requested and M written", without errno)."""
    import errno
    import shutil

    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if exc.errno == errno.ENOSPC or (free is not None and free < nbytes):
        return (f"the disk is full ({free if free is not None else 0} bytes free, a frame "
                f"needs {nbytes}); free space on it or scan to another --data-dir")
    return f"{type(exc).__name__}: {exc}"


class SRASHDetector(FrameFiles, SimDevice):
    """Image-producing device over a :class:`~simulators.instrument.SRASHSimulator`.

    Parameters
    ----------
    backend : SRASHSimulator, optional
        Default: the parent microscope's ``sim``.
    data_dir : path, optional
        Where the per-staging folders of OME-TIFF files go; default: the parent's.
    rng : numpy.random.Generator, optional
        Noise of the frames; default: the parent's ``frame_rng``.
    """

    default_labels = ("imaging",)

    srs_mean = Cpt(Signal, value=0.0, kind="hinted")
    shg_mean = Cpt(Signal, value=0.0, kind="hinted")
    frame_raman_shift = Cpt(Signal, value=0.0, kind="normal")
    frame_pump_nm = Cpt(Signal, value=0.0, kind="normal")
    frame_pump_mw = Cpt(Signal, value=0.0, kind="normal")
    frame_stokes_mw = Cpt(Signal, value=0.0, kind="normal")
    frame_x = Cpt(Signal, value=0.0, kind="normal")
    frame_y = Cpt(Signal, value=0.0, kind="normal")
    frame_number = Cpt(Signal, value=0, kind="normal")
    channel_names = Cpt(Signal, value=",".join(CHANNEL_NAMES), kind="config")
    max_overload_px = Cpt(Signal, value=0, kind="config")

    #: force every frame file to disk before its event exists (see :mod:`..journal`)
    sync_frames: bool = True

    _UNITS = {"srs_mean": "V", "shg_mean": "V", "frame_raman_shift": "cm^-1",
              "frame_pump_nm": "nm", "frame_pump_mw": "mW", "frame_stokes_mw": "mW",
              "frame_x": "um", "frame_y": "um"}

    def __init__(self, prefix: str = "", *, name: str, data_dir: str | Path | None = None,
                 rng: np.random.Generator | None = None, parent: Any = None, **kwargs: Any):
        self._data_dir = None if data_dir is None else Path(data_dir)
        self._rng = rng
        self._lock = threading.RLock()
        self._asset_docs: deque = deque()
        self._compose_datum = None
        self._resource_doc: dict | None = None
        self._resource_sent = False
        self._folder: Path | None = None
        self._index = 0
        self._staged_shape: tuple[int, int, int] | None = None
        self.last_frame: FrameResult | None = None
        self.last_path: Path | None = None
        super().__init__(prefix, name=name, parent=parent, **kwargs)
        base = parent.name if parent is not None else self.name
        self.image_key = f"{base}_image"
        if parent is not None:  # short data keys: srash_srs_mean, not srash_detector_srs_mean
            for attr in self.component_names:
                getattr(self, attr).name = f"{base}_{attr}"

    # ------------------------------------------------------------------ wiring
    def _resolve_backend(self, parent: Any) -> Any:
        sim = getattr(parent, "sim", None)
        if sim is None:
            raise TypeError("SRASHDetector needs backend= (an SRASHSimulator) or a parent "
                            "with .sim")
        return sim

    @property
    def data_dir(self) -> Path:
        d = self._data_dir if self._data_dir is not None else self.find_up("data_dir")
        if d is None:
            raise RuntimeError(f"{self.name}: no data_dir to write frames to")
        return Path(d)

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            self._rng = self.find_up("frame_rng") or np.random.default_rng(0)
        return self._rng

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """(channel, y, x) of the next frame at the scanner's current settings."""
        n = int(self.backend.scanner.pixels)
        return (len(CHANNEL_NAMES), n, n)

    # ------------------------------------------------------------------ bluesky
    def describe(self) -> dict[str, dict[str, Any]]:
        desc = super().describe()
        for attr, unit in self._UNITS.items():
            desc[getattr(self, attr).name]["units"] = unit
        shape = self._staged_shape or self.frame_shape
        desc[self.image_key] = {
            "source": f"SIM:{self.image_key}", "dtype": "array", "dtype_numpy": "<f4",
            "shape": list(shape), "dims": ["channel", "y", "x"], "external": "STREAM:",
            "units": "V", "channel_names": list(CHANNEL_NAMES),
            "instrument": instrument_from_settings(self.backend.settings()),
        }
        return desc

    def stage(self) -> list[object]:
        with self._lock:
            self._compose_resource(self._begin_staging())
        return super().stage()

    def trigger(self) -> DeviceStatus:
        """Raster one frame; the status finishes after ``time_scale x`` the acquisition
        time, or fails with a :class:`DeviceFault` saying what went wrong."""
        if self._compose_datum is None:
            raise RuntimeError(f"{self.name} is not staged: stage() it (plans do) before "
                               "trigger()")
        status = DeviceStatus(self, call_stop_on_failure=False)
        seconds = self.time_scale * float(self.backend.scanner.acquisition_time_s)
        complete_after(status, seconds, self._acquire, on_error=translate_limits)
        return status


    # ------------------------------------------------------------------ acquisition
    def _acquire(self) -> None:
        sim = self.backend
        shape = self.frame_shape
        if shape != self._staged_shape:
            raise DeviceFault(
                f"{self.name}: frame shape changed from {self._staged_shape} to {shape} since "
                "staging (scanner pixels changed inside the run); set scanner settings "
                "before the run")
        frame = sim.frame(self.rng, with_shg=True)
        self.last_frame = frame
        self._record_statuses(frame.faults)
        problem = self._fault_message(frame.faults)
        if problem:
            raise DeviceFault(f"{self.name}: frame not recorded: {problem}")
        with self._lock:
            i = self._index
            path = self._folder / FILE_TEMPLATE.format(i)
            try:
                write_frame(sim, frame, path, i, sync=self.sync_frames)
            except OSError as exc:
                raise DeviceFault(f"{self.name}: frame not recorded: {exc}") from exc
            self.last_path = path
            if not self._resource_sent:
                self._asset_docs.append(("stream_resource", self._resource_doc))
                self._resource_sent = True
            self._asset_docs.append(
                ("stream_datum", self._compose_datum(indices={"start": i, "stop": i + 1})))
            self._index = i + 1
        for attr, value in frame_scalars(frame, i).items():
            getattr(self, attr).put(value)

    def _record_statuses(self, faults: dict) -> None:
        """Show the frame's faults on the parts' status signals (microscope only)."""
        p = self.parent
        if p is None:
            return
        for attr in ("lockin", "pmt", "photodiode"):
            dev = getattr(p, attr, None)
            if dev is not None:
                dev._record_frame(faults)
        pump = getattr(p, "pump", None)
        if pump is not None:
            pump.mode_locked.get()

    def _fault_message(self, faults: dict) -> str:
        return frame_fault_message(faults, int(self.max_overload_px.get()))


# ---------------------------------------------------------------------------- shared
# one copy of what a frame is on disk and in the readings: the in-process detector above
# and the Channel Access IOC (:mod:`srash_ophyd.ioc`) both use these


class FrameWriteError(OSError):
    """A frame file could not be written; the message says why (the disk is full...)."""


def frame_fault_message(faults: dict, max_overload_px: int = 0) -> str:
    """Why a frame must not be recorded ("" when it may): mode-lock lost, PMT tripped, more
    than ``max_overload_px`` overloaded lock-in pixels."""
    msgs = []
    if faults.get("modelock_lost"):
        msgs.append("pump laser lost mode-lock (no ps pulses: SRS/SHG frames invalid); "
                    "restore mode-lock before acquiring")
    if faults.get("pmt_overlight_trip"):
        row = faults.get("pmt_trip_row")
        where = f" at row {row}" if row is not None else " (still tripped)"
        msgs.append(f"SHG PMT overlight protection tripped{where}; reduce the PMT voltage "
                    "or the light and reset the PMT")
    n = int(faults.get("lockin_overload_px", 0) or 0)
    if n > int(max_overload_px):
        msgs.append(f"lock-in overload on {n} pixels (more than max_overload_px="
                    f"{int(max_overload_px)}); use a larger sensitivity")
    return "; ".join(msgs)


def write_frame(sim: Any, frame: FrameResult, path: Path, index: int, *,
                sync: bool = True) -> None:
    """Write ``frame`` (channels SRS, SHG; float32) as the OME-TIFF ``path`` with the
    simulator's settings and the frame's own record; ``OSError`` says why it failed (the
    disk is full...)."""
    data = np.stack([frame.srs, frame.shg]).astype(np.float32, copy=False)
    win = frame.window
    settings = sim.settings()
    names = [srs_channel(frame.raman_shift_cm1), SHG_CHANNEL]
    acq = Acquisition.build(
        names, pump_nm=[frame.pump_nm, frame.pump_nm],
        shifts_cm1=[frame.raman_shift_cm1, None],
        instrument=instrument_from_settings(settings), acquired=time.time())
    settings["frame"] = {
        "index": int(index), "raman_shift_cm1": frame.raman_shift_cm1,
        "pump_nm": frame.pump_nm, "stokes_nm": frame.stokes_nm, "pump_mw": frame.pump_mw,
        "stokes_mw": frame.stokes_mw, "faults": frame.faults, "time_s": frame.time_s,
        "window": win.to_dict(), "channel_names": names,
        "registration_px": list(frame.registration_px)}
    try:
        write_ome_tiff(path, data, channel_names=names, pixel_size_um=win.pixel_um,
                       position_um=(win.x_um, win.y_um), settings=settings, sync=sync,
                       acquisition=acq)
    except OSError as exc:
        raise FrameWriteError(f"cannot write {path}: "
                              f"{_disk_hint(Path(path).parent, data.nbytes, exc)}") from exc


def frame_scalars(frame: FrameResult, index: int) -> dict[str, float | int]:
    """The detector's scalar readings of a recorded frame, by component name (units in
    :attr:`SRASHDetector._UNITS`): means (V), physical shift, powers, field centre."""
    win = frame.window
    return {"srs_mean": float(frame.srs.mean()), "shg_mean": float(frame.shg.mean()),
            "frame_raman_shift": float(frame.raman_shift_cm1),
            "frame_pump_nm": float(frame.pump_nm), "frame_pump_mw": float(frame.pump_mw),
            "frame_stokes_mw": float(frame.stokes_mw),
            "frame_x": float(win.x_um + win.nx * win.pixel_um / 2),
            "frame_y": float(win.y_um + win.ny * win.pixel_um / 2),
            "frame_number": int(index)}
