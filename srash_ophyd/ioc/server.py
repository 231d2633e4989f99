"""A caproto IOC whose records are backed by the SRASH simulators.

One :class:`SRASHIOC` (a :class:`caproto.server.PVGroup`, asyncio) owns one
:class:`simulators.instrument.SRASHSimulator` and the two noise generators of its noise
seed (:func:`simulators.instrument.noise_generators`), exactly as the in-process
microscope (:class:`srash_ophyd.devices.microscope.SRASHMicroscope`) does, so the same
seeds and the same operations give the same frames over Channel Access. PV names, fields
and what maps to what: docs/epics.md.

Behaviour a client relies on:

- **Put completion is the done signal.** A put to a setpoint (``Pump:Wavelength-SP``, a
  stage ``.VAL``, ``Det:Acquire``) completes when the operation is over: after
  ``time_scale x`` the instrument time (tuning, motion, the raster). The done flags
  (``Pump:Wavelength-DMOV``, ``.DMOV``) show the same for humans and archivers.
- **Refused puts** (out of range, power above the safety limit or not available at the
  wavelength, a frame setting the simulator rejects) leave the value unchanged, raise a
  MAJOR / WRITE alarm on the PV put to, and write the simulator's message to
  ``Message-RB``; the put still completes (a client waiting on it is answered). A good put
  clears the PV's alarm.
- **Frames** follow areaDetector's file plugins: ``Det:Acquire`` = 1 rasters one frame and
  writes ``FilePath`` + ``FileName`` + ``%06d`` (``FileNumber``) + ``.ome.tif`` (the file
  the in-process detector writes, byte for byte the same pixels), then
  ``FullFileName_RBV``, ``FileNumber`` + 1, ``ArrayCounter`` + 1, ``WriteStatus`` 0. A fault
  (mode-lock lost, PMT trip, lock-in overload, interlock open, a write error) writes nothing,
  sets ``WriteStatus`` 1 and says why in ``WriteMessage``.
- **Faults** can be injected by a put (``Pump:ModeLockFault``, ``InterlockFault``,
  ``PMT:TripFault``, ``Stage:FollowingErrorFault``) or scheduled at start
  (:class:`IOCSettings`: lose mode-lock at acquisition N for S seconds).
- A client that disconnects mid-operation does not stop the IOC: the operation finishes
  and the records keep their values.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
from caproto import AlarmSeverity, AlarmStatus, ChannelType
from caproto.server import PVGroup, pvproperty

from simulators.errors import HardwareFault, SimulatorError
from simulators.instrument import SRASHSimulator, noise_generators
from simulators.parts.lasers import check_power_safety
from simulators.spectra import pump_nm_for_shift  # noqa: F401 - re-exported for docs

from ..devices._sim import MAX_TIME_SCALE
from ..devices.detector import (
    FrameWriteError,
    frame_fault_message,
    frame_scalars,
    write_frame,
)

__all__ = ["IOCSettings", "SRASHIOC", "build_ioc", "run_ioc"]

#: the file name format of ``Det:FileTemplate`` (areaDetector style: path, name, number)
FILE_TEMPLATE_C = "%s%s%06d.ome.tif"
#: longest JSON / path string PV (characters)
LONG_STRING = 1 << 16
#: refresh of the readbacks while something moves (s of wall time)
TICK_S = 0.02


@dataclasses.dataclass(frozen=True)
class IOCSettings:
    """What the IOC was started with (published as JSON in ``Info-RB``).

    ``modelock_loss_at``: acquisition number (0-based, counting every ``Det:Acquire``) at
    which the pump loses mode-lock, None for never; ``modelock_down_s``: seconds (wall
    time) until it relocks."""

    specimen: str = "testis"
    phenotype: str | None = None
    seed: int = 0
    noise_seed: int = 0
    time_scale: float = 0.0
    modelock_loss_at: int | None = None
    modelock_down_s: float = 0.5


# ---------------------------------------------------------------------------- helpers
_READBACKS: dict[str, Callable[["SRASHIOC"], Any]] = {}
_BOOL = ("Off", "On")


def _prop(name: str, value: Any, get: Callable[["SRASHIOC"], Any] | None, *,
          put: Callable[["SRASHIOC", Any], None] | None = None, doc: str = "",
          units: str = "", dtype: Any = None, enum: tuple[str, ...] | None = None,
          max_length: int | None = None, read_only: bool | None = None) -> pvproperty:
    """A record whose value is ``get(ioc)`` (refreshed after every operation); a put calls
    ``put(ioc, value)`` (a simulator error refuses it, see the module doc)."""
    if get is not None:
        _READBACKS[name] = get
    kw: dict[str, Any] = {"name": name, "value": value, "doc": doc, "alarm_group": name}
    if units:
        kw["units"] = units
    if dtype is not None:
        kw["dtype"] = dtype
    if enum is not None:
        kw["enum_strings"] = enum
        kw["dtype"] = ChannelType.ENUM
    if max_length is not None:
        kw["max_length"] = max_length
        kw["report_as_string"] = False  # a CHAR waveform, as areaDetector's FilePath
        kw["dtype"] = ChannelType.CHAR
    if put is not None:
        setter = put

        async def putter(group: "SRASHIOC", instance: Any, value: Any) -> Any:
            return await group._apply(instance, value, setter)

        kw["put"] = putter
        kw["read_only"] = False
    else:
        kw["read_only"] = True if read_only is None else read_only
    return pvproperty(**kw)


def _enum_value(value: Any, enum: tuple[str, ...] = _BOOL) -> int:
    """An enum put (index or string) as its index."""
    if isinstance(value, str):
        return enum.index(value) if value in enum else int(value)
    return int(value)


def _set_pump_power(ioc: "SRASHIOC", v: float) -> None:
    check_power_safety(float(v), ioc.sim.stokes.power_mw, ioc.sim.response.safety_limit_mw)
    ioc.sim.pump.set_power(float(v))


def _set_stokes_power(ioc: "SRASHIOC", v: float) -> None:
    check_power_safety(ioc.sim.pump.power_mw, float(v), ioc.sim.response.safety_limit_mw)
    ioc.sim.stokes.set_power(float(v))


def _set_eom_frequency(ioc: "SRASHIOC", v: float) -> None:
    ioc.sim.eom.set_frequency(float(v))
    ioc.sim.lockin.reference_hz = ioc.sim.eom.frequency_hz  # the reference follows the EOM


def _set_phase(ioc: "SRASHIOC", v: float) -> None:
    from simulators.errors import check_range

    ioc.sim.lockin.phase_deg = check_range("lock-in phase", v, -360.0, 360.0, "deg")


def _set_bias(ioc: "SRASHIOC", v: float) -> None:
    from simulators.errors import check_range

    ioc.sim.photodiode.bias_v = check_range("photodiode bias", v, 0.0, 30.0, "V")


def _set_modelock_fault(ioc: "SRASHIOC", v: Any) -> None:
    if _enum_value(v):
        ioc.sim.pump.inject_modelock_loss()
    else:
        ioc.sim.pump.restore_modelock()


def _set_interlock_fault(ioc: "SRASHIOC", v: Any) -> None:
    ioc.interlock_open = bool(_enum_value(v))


def _set_pmt_reset(ioc: "SRASHIOC", v: Any) -> None:
    if _enum_value(v, ("Done", "Reset")):
        ioc.sim.pmt.reset_trip()


def _set_pmt_trip(ioc: "SRASHIOC", v: Any) -> None:
    if _enum_value(v):
        ioc.sim.pmt.tripped = True


def _set_following_error(ioc: "SRASHIOC", v: Any) -> None:
    if _enum_value(v):
        ioc.sim.stage.inject_following_error()
    else:
        ioc.sim.stage.clear_fault()


def _set_time_scale(ioc: "SRASHIOC", v: float) -> None:
    v = float(v)
    if not 0.0 <= v <= MAX_TIME_SCALE:
        raise SimulatorError(f"time scale {v!r} not allowed: 0 (instant) .. "
                             f"{MAX_TIME_SCALE:g} (x real instrument time)")
    ioc.time_scale = v


def _set_int(attr: str) -> Callable[["SRASHIOC", Any], None]:
    def put(ioc: "SRASHIOC", v: Any) -> None:
        if int(v) < 0:
            raise SimulatorError(f"{attr} {v!r} not allowed: an integer >= 0")
        setattr(ioc, attr, int(v))
    return put


def _set_text(attr: str) -> Callable[["SRASHIOC", Any], None]:
    def put(ioc: "SRASHIOC", v: Any) -> None:
        setattr(ioc, attr, _text(v))
    return put


def _motor(name: str, doc: str) -> pvproperty:
    async def putter(group: "SRASHIOC", instance: Any, value: Any) -> Any:
        return await group._move_axis(instance, name[-1].lower(), float(value))

    return pvproperty(name=name, value=0.0, record="motor", precision=4, doc=doc,
                      alarm_group=name, put=putter)


# ---------------------------------------------------------------------------- the IOC
class SRASHIOC(PVGroup):
    """The simulated SRASH instrument as EPICS records (module doc; docs/epics.md)."""

    # -- pump (tunable OPO)
    pump_wavelength_sp = pvproperty(name="Pump:Wavelength-SP", value=0.0, precision=4,
                                    units="nm", alarm_group="Pump:Wavelength-SP",
                                    doc="pump wavelength setpoint; the put completes when "
                                        "tuned")
    pump_wavelength_rb = _prop("Pump:Wavelength-RB", 0.0, lambda s: s.sim.pump.wavelength_nm,
                               units="nm", doc="pump wavelength readback")
    pump_dmov = _prop("Pump:Wavelength-DMOV", 1, None, enum=("Moving", "Done"),
                      doc="1 when not tuning")
    pump_tune_time = _prop("Pump:TuneTime-RB", 0.0, None, units="s",
                           doc="instrument time of the last tuning")
    pump_power = _prop("Pump:Power-SP", 0.0, lambda s: s.sim.pump.power_mw,
                       put=_set_pump_power, units="mW", doc="pump power at the sample")
    pump_shutter = _prop("Pump:Shutter", 1, lambda s: int(s.sim.pump.shutter_open),
                         put=lambda s, v: setattr(s.sim.pump, "shutter_open",
                                                  bool(_enum_value(v, ("Closed", "Open")))),
                         enum=("Closed", "Open"), doc="pump shutter")
    pump_mode_locked = _prop("Pump:ModeLocked-RB", 1, lambda s: int(s.sim.pump.mode_locked),
                             enum=("Unlocked", "Locked"), doc="mode-lock status")
    pump_modelock_fault = _prop("Pump:ModeLockFault", 0,
                                lambda s: int(not s.sim.pump.mode_locked),
                                put=_set_modelock_fault, enum=_BOOL,
                                doc="fault injection: 1 loses mode-lock, 0 relocks")
    pump_pulse = _prop("Pump:PulseWidth-RB", 0.0, lambda s: s.sim.pump.config.pulse_ps,
                       units="ps")
    pump_rep_rate = _prop("Pump:RepRate-RB", 0.0, lambda s: s.sim.pump.config.rep_rate_mhz,
                          units="MHz")
    # -- Stokes
    stokes_wavelength = _prop("Stokes:Wavelength-RB", 0.0,
                              lambda s: s.sim.stokes.wavelength_nm, units="nm")
    stokes_power = _prop("Stokes:Power-SP", 0.0, lambda s: s.sim.stokes.power_mw,
                         put=_set_stokes_power, units="mW")
    stokes_shutter = _prop("Stokes:Shutter", 1, lambda s: int(s.sim.stokes.shutter_open),
                           put=lambda s, v: setattr(s.sim.stokes, "shutter_open",
                                                    bool(_enum_value(v, ("Closed", "Open")))),
                           enum=("Closed", "Open"))
    # -- EOM
    eom_frequency = _prop("EOM:Frequency-SP", 0.0, lambda s: s.sim.eom.frequency_hz,
                          put=_set_eom_frequency, units="Hz")
    eom_depth = _prop("EOM:Depth-SP", 0.0, lambda s: s.sim.eom.depth,
                      put=lambda s, v: s.sim.eom.set_depth(float(v)))
    eom_enable = _prop("EOM:Enable", 1, lambda s: int(s.sim.eom.enabled),
                       put=lambda s, v: setattr(s.sim.eom, "enabled", bool(_enum_value(v))),
                       enum=_BOOL)
    # -- photodiode
    pd_responsivity = _prop("PD:Responsivity-RB", 0.0,
                            lambda s: s.sim.photodiode.config.responsivity_a_per_w,
                            units="A/W")
    pd_bias = _prop("PD:Bias-SP", 0.0, lambda s: s.sim.photodiode.bias_v, put=_set_bias,
                    units="V")
    pd_saturated = _prop("PD:Saturated-RB", 0, lambda s: int(s.last_faults.get(
        "photodiode_saturated", False)), enum=_BOOL)
    # -- lock-in
    li_tau = _prop("LockIn:TimeConstant-SP", 0.0, lambda s: s.sim.lockin.tau_s,
                   put=lambda s, v: s.sim.lockin.set_time_constant(float(v)), units="s")
    li_order = _prop("LockIn:FilterOrder-SP", 0, lambda s: s.sim.lockin.order,
                     put=lambda s, v: s.sim.lockin.set_time_constant(s.sim.lockin.tau_s,
                                                                     int(v)))
    li_sensitivity = _prop("LockIn:Sensitivity-SP", 0.0, lambda s: s.sim.lockin.sensitivity_v,
                           put=lambda s, v: s.sim.lockin.set_sensitivity(float(v)), units="V")
    li_phase = _prop("LockIn:Phase-SP", 0.0, lambda s: s.sim.lockin.phase_deg, put=_set_phase,
                     units="deg")
    li_output = _prop("LockIn:Output-SP", "X", lambda s: s.sim.lockin.output,
                      put=lambda s, v: s.sim.lockin.set_output(str(v)), dtype=str)
    li_reference = _prop("LockIn:RefFreq-RB", 0.0, lambda s: s.sim.lockin.reference_hz,
                         units="Hz")
    li_overload = _prop("LockIn:Overload-RB", 0,
                        lambda s: int((s.last_faults.get("lockin_overload_px", 0) or 0) > 0),
                        enum=_BOOL)
    li_overload_px = _prop("LockIn:OverloadPx-RB", 0, lambda s: int(
        s.last_faults.get("lockin_overload_px", 0) or 0))
    # -- PMT
    pmt_voltage = _prop("PMT:Voltage-SP", 0.0, lambda s: s.sim.pmt.voltage,
                        put=lambda s, v: s.sim.pmt.set_voltage(float(v)), units="V")
    pmt_gain = _prop("PMT:Gain-RB", 0.0, lambda s: s.sim.pmt.gain)
    pmt_enable = _prop("PMT:Enable", 1, lambda s: int(s.sim.pmt.enabled),
                       put=lambda s, v: setattr(s.sim.pmt, "enabled", bool(_enum_value(v))),
                       enum=_BOOL)
    pmt_tripped = _prop("PMT:Tripped-RB", 0, lambda s: int(s.sim.pmt.tripped), enum=_BOOL,
                        doc="overlight protection tripped (latches; reset with PMT:Reset)")
    pmt_saturated = _prop("PMT:SaturatedPx-RB", 0, lambda s: int(
        s.last_faults.get("pmt_saturated_px", 0) or 0))
    pmt_reset = _prop("PMT:Reset", 0, lambda s: 0, put=_set_pmt_reset, enum=("Done", "Reset"),
                      doc="1 re-arms the overlight protection")
    pmt_trip_fault = _prop("PMT:TripFault", 0, lambda s: int(s.sim.pmt.tripped),
                           put=_set_pmt_trip, enum=_BOOL, doc="fault injection: 1 trips")
    # -- galvo scanner
    sc_pixels = _prop("Scan:Pixels-SP", 0, lambda s: s.sim.scanner.pixels,
                      put=lambda s, v: s.sim.scanner.set_pixels(int(v)))
    sc_fov = _prop("Scan:FOV-SP", 0.0, lambda s: s.sim.scanner.fov_um,
                   put=lambda s, v: s.sim.scanner.set_fov(float(v)), units="um")
    sc_zoom = _prop("Scan:Zoom-SP", 0.0, lambda s: s.sim.scanner.zoom,
                    put=lambda s, v: s.sim.scanner.set_zoom(float(v)))
    sc_dwell = _prop("Scan:Dwell-SP", 0.0, lambda s: s.sim.scanner.dwell_s,
                     put=lambda s, v: s.sim.scanner.set_dwell(float(v)), units="s")
    sc_averages = _prop("Scan:Averages-SP", 0, lambda s: s.sim.scanner.averages,
                        put=lambda s, v: s.sim.scanner.set_averages(int(v)))
    sc_bidirectional = _prop("Scan:Bidirectional-SP", 0,
                             lambda s: int(s.sim.scanner.bidirectional),
                             put=lambda s, v: setattr(s.sim.scanner, "bidirectional",
                                                      bool(_enum_value(v))), enum=_BOOL)
    sc_pixel_size = _prop("Scan:PixelSize-RB", 0.0, lambda s: s.sim.scanner.pixel_um,
                          units="um")
    sc_frame_time = _prop("Scan:FrameTime-RB", 0.0, lambda s: s.sim.scanner.frame_time_s,
                          units="s")
    sc_acq_time = _prop("Scan:AcqTime-RB", 0.0, lambda s: s.sim.scanner.acquisition_time_s,
                        units="s")
    # -- XYZ stage (motor records)
    stage_x = _motor("Stage:X", "stage x (um)")
    stage_y = _motor("Stage:Y", "stage y (um)")
    stage_z = _motor("Stage:Z", "stage z (um)")
    stage_following_error = _prop("Stage:FollowingError-RB", 0,
                                  lambda s: int(s.sim.stage.faulted), enum=_BOOL)
    stage_fe_fault = _prop("Stage:FollowingErrorFault", 0, lambda s: int(s.sim.stage.faulted),
                           put=_set_following_error, enum=_BOOL,
                           doc="fault injection: 1 = the next move aborts; 0 clears it")
    # -- frame detector (areaDetector file-plugin style)
    det_acquire = pvproperty(name="Det:Acquire", value=0, dtype=ChannelType.ENUM,
                             enum_strings=("Done", "Acquire"), alarm_group="Det:Acquire",
                             doc="1 acquires one frame; the put completes when it is written")
    det_acquire_time = _prop("Det:AcquireTime_RBV", 0.0,
                             lambda s: s.sim.scanner.acquisition_time_s, units="s",
                             doc="instrument time of one frame (all averages)")
    det_array_counter = _prop("Det:ArrayCounter", 0, lambda s: s.array_counter,
                              put=_set_int("array_counter"), doc="frames written")
    det_array_counter_rbv = _prop("Det:ArrayCounter_RBV", 0, lambda s: s.array_counter)
    det_file_path = _prop("Det:FilePath", "", lambda s: s.file_path,
                          put=_set_text("file_path"), max_length=4096,
                          doc="folder of the frames (created when missing)")
    det_file_name = _prop("Det:FileName", "", lambda s: s.file_name,
                          put=_set_text("file_name"), max_length=256)
    det_file_number = _prop("Det:FileNumber", 0, lambda s: s.file_number,
                            put=_set_int("file_number"), doc="number of the next file")
    det_file_template = _prop("Det:FileTemplate", FILE_TEMPLATE_C, lambda s: FILE_TEMPLATE_C,
                              max_length=64)
    det_full_file_name = _prop("Det:FullFileName_RBV", "", lambda s: s.full_file_name,
                               max_length=4096)
    det_write_status = _prop("Det:WriteStatus", 0, lambda s: s.write_status,
                             enum=("Write OK", "Write error"))
    det_write_message = _prop("Det:WriteMessage", "", lambda s: s.write_message,
                              max_length=4096)
    det_max_overload = _prop("Det:MaxOverloadPx", 0, lambda s: s.max_overload_px,
                             put=_set_int("max_overload_px"),
                             doc="overloaded lock-in pixels a frame may have")
    det_sync = _prop("Det:SyncFrames", 1, lambda s: int(s.sync_frames),
                     put=lambda s, v: setattr(s, "sync_frames", bool(_enum_value(v))),
                     enum=_BOOL, doc="fsync every frame file")
    det_srs_mean = _prop("Det:SrsMean_RBV", 0.0, lambda s: s.scalars["srs_mean"], units="V")
    det_shg_mean = _prop("Det:ShgMean_RBV", 0.0, lambda s: s.scalars["shg_mean"], units="V")
    det_shift = _prop("Det:FrameRamanShift_RBV", 0.0,
                      lambda s: s.scalars["frame_raman_shift"], units="cm^-1")
    det_pump_nm = _prop("Det:FramePumpNm_RBV", 0.0, lambda s: s.scalars["frame_pump_nm"],
                        units="nm")
    det_pump_mw = _prop("Det:FramePumpMw_RBV", 0.0, lambda s: s.scalars["frame_pump_mw"],
                        units="mW")
    det_stokes_mw = _prop("Det:FrameStokesMw_RBV", 0.0,
                          lambda s: s.scalars["frame_stokes_mw"], units="mW")
    det_frame_x = _prop("Det:FrameX_RBV", 0.0, lambda s: s.scalars["frame_x"], units="um")
    det_frame_y = _prop("Det:FrameY_RBV", 0.0, lambda s: s.scalars["frame_y"], units="um")
    det_frame_number = _prop("Det:FrameNumber_RBV", 0, lambda s: int(s.scalars["frame_number"]))
    # -- instrument-wide
    interlock = _prop("Interlock-RB", 1, lambda s: int(not s.interlock_open),
                      enum=("Open", "Closed"),
                      doc="laser-safety shutter interlock: 1 closed (safe), 0 open")
    interlock_fault = _prop("InterlockFault", 0, lambda s: int(s.interlock_open),
                            put=_set_interlock_fault, enum=_BOOL,
                            doc="fault injection: 1 opens the interlock, 0 closes it")
    pv_message = _prop("Message-RB", "", lambda s: s.message, max_length=4096,
                    doc="why the last put was refused")
    refused = _prop("Refused-RB", 0, lambda s: s.refusals,
                    doc="number of refused puts since start (Message-RB says the last why)")
    time_scale_pv = _prop("TimeScale", 0.0, lambda s: s.time_scale, put=_set_time_scale,
                          doc="x real instrument time (0 = instant)")
    pv_info = _prop("Info-RB", "{}", lambda s: s.info_json, max_length=LONG_STRING,
                 doc="JSON: specimen, phenotype, seeds the IOC was started with")
    settings_json = pvproperty(name="Settings-RB", value="{}", dtype=ChannelType.CHAR,
                               max_length=LONG_STRING, report_as_string=False, read_only=True,
                               alarm_group="Settings-RB",
                               doc="JSON: the simulator's settings (computed when read)")
    calibration_json = pvproperty(name="Calibration-RB", value="{}", dtype=ChannelType.CHAR,
                                  max_length=LONG_STRING, report_as_string=False,
                                  read_only=True, alarm_group="Calibration-RB",
                                  doc="JSON: dark levels and volts per unit (computed when "
                                      "read)")

    def __init__(self, prefix: str, *, sim: SRASHSimulator, settings: IOCSettings,
                 **kwargs: Any) -> None:
        self.sim = sim
        self.options = settings
        self.frame_rng, self.motion_rng = noise_generators(settings.noise_seed)
        self.time_scale = float(settings.time_scale)
        self.interlock_open = False
        self.message = ""
        self.refusals = 0
        self.array_counter = 0
        self.file_path = ""
        self.file_name = ""
        self.file_number = 0
        self.full_file_name = ""
        self.write_status = 0
        self.write_message = ""
        self.max_overload_px = 0
        self.sync_frames = True
        self.attempts = 0
        self.last_faults: dict[str, Any] = {}
        self.scalars: dict[str, float] = dict.fromkeys(
            ("srs_mean", "shg_mean", "frame_raman_shift", "frame_pump_nm", "frame_pump_mw",
             "frame_stokes_mw", "frame_x", "frame_y", "frame_number"), 0.0)
        self.info_json = json.dumps(dataclasses.asdict(settings))
        self._op_lock: asyncio.Lock | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ioc-sim")
        super().__init__(prefix, **kwargs)

    # ------------------------------------------------------------------ plumbing
    @property
    def op_lock(self) -> asyncio.Lock:
        """Serialises operations that change the simulator (created in the IOC's loop)."""
        if self._op_lock is None:
            self._op_lock = asyncio.Lock()
        return self._op_lock

    def pv(self, suffix: str) -> Any:
        return self.pvdb[self.prefix + suffix]

    async def publish(self, skip: Any = None) -> None:
        """Write every readback whose simulator value changed (monitors see it)."""
        for suffix, get in _READBACKS.items():
            inst = self.pv(suffix)
            if inst is skip:
                continue
            value = get(self)
            if isinstance(value, (bool, np.bool_)):
                value = int(value)
            elif isinstance(value, np.generic):
                value = value.item()
            if _same(inst.value, value):
                continue
            await inst.write(value, verify_value=False)

    async def _refuse(self, instance: Any, exc: BaseException) -> None:
        """Say why ``instance``'s put was refused: ``Message-RB`` (``<pv>: <reason>``),
        ``Refused-RB`` + 1, then a MAJOR / WRITE alarm on the PV. The alarm is raised just
        after the put is done: caproto recomputes a numeric PV's alarm from its alarm limits
        at the end of every write, which would clear one raised inside the putter."""
        self.message = f"{instance.pvname}: {exc}"
        self.refusals += 1
        await self.pv("Message-RB").write(self.message, verify_value=False)
        await self.pv("Refused-RB").write(self.refusals, verify_value=False)

        async def alarm() -> None:
            await asyncio.sleep(0.01)
            await instance.alarm.write(status=AlarmStatus.WRITE,
                                       severity=AlarmSeverity.MAJOR_ALARM)

        asyncio.ensure_future(alarm())

    async def _ok(self, instance: Any) -> None:
        if instance.alarm.severity != AlarmSeverity.NO_ALARM:
            await instance.alarm.write(status=AlarmStatus.NO_ALARM,
                                       severity=AlarmSeverity.NO_ALARM)

    async def _apply(self, instance: Any, value: Any,
                     setter: Callable[["SRASHIOC", Any], None]) -> Any:
        """Run a setting's ``setter``; refuse (old value kept, alarm, message) on a
        simulator error."""
        async with self.op_lock:
            try:
                setter(self, value)
            except (SimulatorError, ValueError, TypeError) as exc:
                await self._refuse(instance, exc)
                return instance.value
            await self._ok(instance)
            await self.publish(skip=instance)
            get = _READBACKS.get(instance.pvname[len(self.prefix):])
            new = get(self) if get is not None else value
            return int(new) if isinstance(new, bool) else new

    async def _sleep(self, instrument_s: float, stop: Callable[[], bool] | None = None
                     ) -> float:
        """Wait ``time_scale x instrument_s`` (wall s), polling ``stop``; returns the
        fraction of the wait done (1.0 unless stopped)."""
        total = self.time_scale * float(instrument_s)
        if total <= 0:
            return 1.0
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while (elapsed := loop.time() - t0) < total:
            if stop is not None and stop():
                return elapsed / total
            await asyncio.sleep(min(TICK_S, total - elapsed))
        return 1.0

    # ------------------------------------------------------------------ startup
    @pv_info.startup
    async def pv_info(self, instance: Any, async_lib: Any) -> None:
        for suffix, axis in (("Stage:X", "x"), ("Stage:Y", "y"), ("Stage:Z", "z")):
            motor = self.pv(suffix)
            fields = motor.field_inst
            lo, hi = self.sim.stage.config.limits(axis)
            await fields.user_low_limit.write(float(lo))
            await fields.user_high_limit.write(float(hi))
            await fields.engineering_units.write("um")
            speed = (self.sim.stage.config.z_speed_um_s if axis == "z"
                     else self.sim.stage.config.speed_um_s)
            await fields.velocity.write(float(speed))
            pos = float(self.sim.stage.position[axis])
            await motor.write(pos, verify_value=False)
            await fields.user_readback_value.write(pos)
            await fields.done_moving_to_value.write(1)
        c = self.sim.pump.config
        await self.pump_wavelength_sp.write_metadata(
            lower_ctrl_limit=float(c.min_nm), upper_ctrl_limit=float(c.max_nm))
        await self.pump_wavelength_sp.write(self.sim.pump.wavelength_nm, verify_value=False)
        await self.publish()

    @settings_json.getter  # type: ignore[no-redef]
    async def settings_json(self, instance: Any) -> str:
        return json.dumps(self.sim.settings(), default=_json_default)

    @calibration_json.getter  # type: ignore[no-redef]
    async def calibration_json(self, instance: Any) -> str:
        cal = self.sim.calibration(np.random.default_rng(0))
        return json.dumps(cal, default=_json_default)

    # ------------------------------------------------------------------ pump tuning
    @pump_wavelength_sp.putter  # type: ignore[no-redef]
    async def pump_wavelength_sp(self, instance: Any, value: float) -> float:
        pump = self.sim.pump
        async with self.op_lock:
            try:
                target = float(value)
                if not math.isfinite(target):
                    raise SimulatorError(f"pump wavelength {value!r} not allowed: a number")
                seconds = pump.tune_time_s(target)
                start = pump.wavelength_nm
                pump.tune(target)  # range and power-availability checks
            except (SimulatorError, ValueError, TypeError) as exc:
                await self._refuse(instance, exc)
                return instance.value
            pump.wavelength_nm = start  # readback follows after the tuning time
            await self._ok(instance)
            await self.pump_dmov.write(0, verify_value=False)
            await self.pump_tune_time.write(float(seconds), verify_value=False)
            try:
                await self._sleep(seconds)
            finally:  # also when the put is cancelled (its client went away): finish tuning
                pump.wavelength_nm = target
                await self.pump_dmov.write(1, verify_value=False)
                await self.publish()
        return target

    # ------------------------------------------------------------------ stage
    async def _move_axis(self, instance: Any, axis: str, target: float) -> float:
        """A motor record's VAL put: check, move the simulated stage (its repeatability
        drawn from the motion generator in the order the puts arrive), then readback and
        DMOV after the scaled motion time; STOP ends the motion where it is."""
        stage = self.sim.stage
        fields = instance.field_inst
        start = float(stage.position[axis])
        try:
            stage.check(axis, target)
        except SimulatorError as exc:
            await fields.limit_violation.write(1)
            await self._refuse(instance, exc)
            return instance.value
        seconds = stage.move_time_s(**{axis: target})
        fault: BaseException | None = None
        try:  # synchronous up to here: the motion generator is drawn in put order
            stage.move(self.motion_rng, **{axis: target})
        except HardwareFault as exc:
            fault = exc
        await fields.limit_violation.write(0)
        await fields.done_moving_to_value.write(0)
        await fields.motor_is_moving.write(1)
        if fields.stop.value:
            await fields.stop.write(0)
        try:
            done = await self._sleep(seconds, stop=lambda: bool(fields.stop.value))
        except asyncio.CancelledError:  # the client went away: the motion still ends
            pos = float(stage.position[axis])
            await fields.user_readback_value.write(pos)
            await fields.motor_is_moving.write(0)
            await fields.done_moving_to_value.write(1)
            raise
        if done < 1.0:  # stopped: the axis halts on the way
            stage.position[axis] = start + done * (target - start)
            stage.target[axis] = stage.position[axis]
            target = stage.position[axis]
            await fields.stop.write(0)
            fault = fault or HardwareFault(f"stage {axis}: motion stopped before the target")
        pos = float(stage.position[axis])
        await fields.user_readback_value.write(pos)
        await fields.dial_readback_value.write(pos)
        await fields.motor_is_moving.write(0)
        await fields.done_moving_to_value.write(1)
        if fault is not None:
            await self._refuse(instance, fault)
        else:
            await self._ok(instance)
        await self.publish()
        return float(target)

    # ------------------------------------------------------------------ detector
    @det_acquire.putter  # type: ignore[no-redef]
    async def det_acquire(self, instance: Any, value: Any) -> int:
        if not _enum_value(value, ("Done", "Acquire")):
            return 0
        async with self.op_lock:
            n = self.attempts
            self.attempts += 1
            self._scheduled_faults(n)
            try:
                await self._acquire_frame()
            except _FrameRefused as exc:
                self.write_status, self.write_message = 1, str(exc)
                await self._refuse(instance, exc)
            else:
                self.write_status, self.write_message = 0, ""
                await self._ok(instance)
            await self.publish()
        return 0

    def _scheduled_faults(self, attempt: int) -> None:
        o = self.options
        if o.modelock_loss_at is not None and attempt == o.modelock_loss_at:
            self.sim.pump.inject_modelock_loss()
            loop = asyncio.get_running_loop()
            loop.call_later(max(float(o.modelock_down_s), 0.0), self._relock)

    def _relock(self) -> None:
        self.sim.pump.restore_modelock()
        asyncio.ensure_future(self.publish())

    async def _acquire_frame(self) -> None:
        sim = self.sim
        if self.interlock_open:
            raise _FrameRefused("frame not recorded: laser-safety shutter interlock open; "
                                "close it (the lasers are blocked)")
        if not self.file_path:
            raise _FrameRefused("frame not recorded: no Det:FilePath set")
        await self._sleep(sim.scanner.acquisition_time_s)
        loop = asyncio.get_running_loop()
        frame = await loop.run_in_executor(self._executor, lambda: sim.frame(self.frame_rng,
                                                                             with_shg=True))
        self.last_faults = dict(frame.faults)
        problem = frame_fault_message(frame.faults, self.max_overload_px)
        if problem:
            raise _FrameRefused(f"frame not recorded: {problem}")
        i = self.file_number
        folder = Path(self.file_path)
        path = folder / f"{self.file_name}{i:06d}.ome.tif"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            await loop.run_in_executor(self._executor, lambda: write_frame(
                sim, frame, path, i, sync=self.sync_frames))
        except (FrameWriteError, OSError) as exc:
            raise _FrameRefused(f"frame not recorded: {exc}") from exc
        self.scalars = dict(frame_scalars(frame, i))
        self.full_file_name = str(path)
        self.file_number = i + 1
        self.array_counter += 1


class _FrameRefused(Exception):
    """A frame not recorded; the message goes to ``Det:WriteMessage``."""


def _text(v: Any) -> str:
    """A string put (str, bytes or a char array) as str, up to the first NUL."""
    if isinstance(v, str):
        return v.split("\0", 1)[0]
    raw = bytes(v) if isinstance(v, (bytes, bytearray)) else np.asarray(
        v, dtype=np.uint8).tobytes()
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def _same(a: Any, b: Any) -> bool:
    try:
        if isinstance(a, float) or isinstance(b, float):
            return float(a) == float(b)
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


# ---------------------------------------------------------------------------- running
def build_ioc(prefix: str = "SRASH:", *, specimen: str = "testis",
              phenotype: str | None = None, seed: int = 0, noise_seed: int = 0,
              time_scale: float = 0.0, modelock_loss_at: int | None = None,
              modelock_down_s: float = 0.5, **scan_settings: Any) -> SRASHIOC:
    """The IOC over a simulator built like :func:`srash_ophyd.devices.factory.make_microscope`
    builds its own (same specimen, seeds and ``scan_settings``: ``pixels``, ``fov_um``,
    ``dwell_s``, ``averages``, ``x_um``, ``y_um``...)."""
    from simulators.instrument import build_simulator
    from simulators.specimens import make_specimen

    from ..devices._sim import check_time_scale
    from ..errors import SrashError

    if not prefix or any(c.isspace() for c in prefix):
        raise SrashError(f"--prefix {prefix!r} not allowed: a non-empty PV prefix without "
                         "spaces, e.g. SRASH:")
    check_time_scale(time_scale)
    spec = make_specimen(specimen, seed, phenotype=phenotype)
    sim = build_simulator(spec, session_seed=noise_seed, **scan_settings)
    settings = IOCSettings(specimen=specimen, phenotype=phenotype, seed=int(seed),
                           noise_seed=int(noise_seed), time_scale=float(time_scale),
                           modelock_loss_at=modelock_loss_at,
                           modelock_down_s=float(modelock_down_s))
    return SRASHIOC(prefix, sim=sim, settings=settings)


def run_ioc(ioc: SRASHIOC, *, interfaces: list[str] | None = None,
            log_pv_names: bool = False) -> None:
    """Serve ``ioc`` until SIGINT / SIGTERM / SIGHUP (caproto's asyncio server; addresses
    from the ``EPICS_CAS_*`` environment variables unless ``interfaces``); an operation in
    flight is cancelled, the records go with the process."""
    import contextlib
    import signal

    from caproto.asyncio.server import start_server

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        server = asyncio.ensure_future(start_server(ioc.pvdb, interfaces=interfaces,
                                                    log_pv_names=log_pv_names))
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait([server, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in (server, stopper):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        ioc._executor.shutdown(wait=False, cancel_futures=True)

    asyncio.run(serve())
