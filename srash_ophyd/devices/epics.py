"""The SRASH devices over EPICS Channel Access: same component names and kinds as the
simulated devices, so plans, documents and the catalog see the same data keys.

They talk to any IOC that serves the PVs of docs/epics.md: ``srash ioc`` (a caproto IOC over
the simulators, :mod:`srash_ophyd.ioc`) or a facility's own. Nothing here imports the IOC or
a simulator: every value comes over CA.

Conventions (docs/epics.md has the PV table):

- **Settings** (:class:`EpicsSetting`) put with put-completion and then read the PV's
  alarm: the IOC refuses a bad value by keeping the old one, raising a MAJOR alarm and
  writing why to ``<ioc>Message-RB``; the put then raises :class:`~ophyd.utils.LimitError`
  (``set()`` fails its status with it) with the IOC's message.
- **Readings are fresh** (no monitors, every ``get`` a CA read), as the simulated devices
  read their part, so an event holds what the IOC holds when it is read.
- **Status signals** (:class:`PolledStatus`: mode-lock, interlock, trips) run their value
  subscriptions when a read finds a change, like the simulated ones: the microscope reads
  them at every trigger, the suspenders poll them while tripped. Pushed monitors are avoided
  on purpose: a suspension landing between an event's save and the next checkpoint would
  make bluesky replay that save (a duplicated event; see :mod:`plans.suspenders`).
- **Axes** (:class:`EpicsAxis`) complete their move status on the setpoint's put
  completion (the IOC completes it when the motion is over), check their limits before
  anything moves (the motor record's ``HLM`` / ``LLM``), and fail with the IOC's message
  when it refuses the move.
- **The detector** (:class:`EpicsSRASHDetector`) follows areaDetector's file plugins: at
  staging it points ``Det:FilePath`` at a fresh folder ``<data_dir>/<resource uid>/`` and
  resets ``Det:FileNumber``; a trigger puts ``Det:Acquire`` = 1 and waits for its
  completion, then checks ``WriteStatus`` and ``FullFileName_RBV`` and announces the file
  with the same StreamResource / StreamDatum as the in-process detector. The IOC writes the
  files, so ``data_dir`` must be the same folder for the IOC and the client (one host, or a
  shared file system mounted at the same path).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO, PseudoPositioner, PseudoSingle, Signal
from ophyd.ophydobj import OphydObject
from ophyd.positioner import PositionerBase
from ophyd.pseudopos import pseudo_position_argument, real_position_argument
from ophyd.status import DeviceStatus, MoveStatus, Status
from ophyd.utils import LimitError

from plans.contract import DETECTOR_CHANNELS

from ..errors import SrashError
from ._shared import FILE_TEMPLATE, DetectorFront, FrameFiles, RealMoveFailures
from ._sim import DeviceFault, Labelled

__all__ = [
    "EpicsAxis", "EpicsEOM", "EpicsGalvoScanner", "EpicsLockInAmplifier", "EpicsPMT",
    "EpicsPhotodiode", "EpicsPumpLaser", "EpicsPumpWavelength", "EpicsRamanShiftAxis",
    "EpicsSRASHDetector", "EpicsSRASHMicroscope", "EpicsSetting", "EpicsStageAxis",
    "EpicsStokesLaser", "EpicsXYZStage", "IOCNotAnswering", "PolledStatus",
    "ensure_control_layer", "read_ioc_info",
]

#: seconds a put or read may wait for the IOC beyond the operation's own time
CA_TIMEOUT_S = 10.0


class IOCNotAnswering(SrashError, TimeoutError):
    """The IOC does not answer (not running, killed, another prefix or port)."""


def ensure_control_layer() -> str:
    """Use caproto as ophyd's control layer unless pyepics with a working libca is set
    already; returns the layer's name. Call before building EPICS devices."""
    import ophyd

    name = getattr(ophyd.cl, "name", "dummy")
    if name not in ("caproto", "pyepics"):
        ophyd.set_cl("caproto")
    return str(ophyd.cl.name)


def _ioc_prefix(pvname: str) -> str:
    """The IOC prefix of a device PV ``<ioc><Device>:<Record>``: ``SRASH:`` of
    ``SRASH:Pump:Power-SP`` and of ``SRASH:Stage:X.VAL``."""
    parts = pvname.split(":")
    return ":".join(parts[:-2]) + ":" if len(parts) > 2 else ""


def _not_answering(pvname: str, exc: BaseException | None = None) -> IOCNotAnswering:
    why = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
    return IOCNotAnswering(
        f"the IOC does not answer for {pvname}{why}: is `srash ioc --prefix "
        f"{_ioc_prefix(pvname)}` running and reachable (EPICS_CA_ADDR_LIST, "
        "EPICS_CA_SERVER_PORT)?")


def _prefix_of(sig: Any) -> str:
    """The IOC prefix of a signal: its microscope's ``prefix``, else from its PV name."""
    root = getattr(sig, "root", None)
    if isinstance(root, EpicsSRASHMicroscope):
        return str(root.prefix)
    return _ioc_prefix(sig.pvname)


_IOC_PVS: dict[str, Any] = {}
_IOC_PVS_LOCK = threading.Lock()


def _ioc_pv(sig: Any, record: str) -> Any:
    """The low-level PV (one per name, no monitor) of the IOC-wide ``record``
    (``Message-RB``...) of ``sig``'s IOC."""
    import ophyd

    name = _prefix_of(sig) + record
    with _IOC_PVS_LOCK:
        pv = _IOC_PVS.get(name)
        if pv is None:
            pv = _IOC_PVS[name] = ophyd.cl.get_pv(name, auto_monitor=False)
    try:
        ok = pv.wait_for_connection(timeout=CA_TIMEOUT_S)
    except TimeoutError:
        ok = False
    if not ok:
        raise _not_answering(pv.pvname)
    return pv


def _refusals(sig: Any) -> int:
    """The IOC's count of refused puts (``Refused-RB``)."""
    try:
        return int(_ioc_pv(sig, "Refused-RB").get(timeout=CA_TIMEOUT_S, use_monitor=False))
    except TimeoutError as exc:
        raise _not_answering(sig.pvname, exc) from exc


def _ioc_message(sig: Any) -> str:
    try:
        return _decode_chars(_ioc_pv(sig, "Message-RB").get(timeout=CA_TIMEOUT_S,
                                                             use_monitor=False))
    except TimeoutError:
        return ""


def read_ioc_info(prefix: str, timeout: float = CA_TIMEOUT_S) -> dict[str, Any]:
    """What the IOC of ``prefix`` was started with (``Info-RB``: specimen, phenotype,
    seeds); :class:`IOCNotAnswering` when it does not answer."""
    import ophyd

    ensure_control_layer()
    pv = ophyd.cl.get_pv(prefix + "Info-RB", auto_monitor=False)
    try:
        if not pv.wait_for_connection(timeout=timeout):
            raise TimeoutError(f"{pv.pvname} did not connect")
        return dict(json.loads(_decode_chars(pv.get(timeout=timeout, use_monitor=False))))
    except TimeoutError as exc:
        raise IOCNotAnswering(
            f"the IOC with prefix {prefix!r} does not answer within {timeout:g} s: start "
            f"it with `srash ioc --prefix {prefix}` and check EPICS_CA_ADDR_LIST / "
            "EPICS_CA_SERVER_PORT") from exc


# ---------------------------------------------------------------------------- signals
class _FreshRead:
    """Mixin: every ``get`` is a CA read; a disconnected IOC is :class:`IOCNotAnswering`."""

    def get(self, **kwargs: Any) -> Any:
        kwargs.setdefault("use_monitor", False)
        try:
            return super().get(**kwargs)  # type: ignore[misc]
        except TimeoutError as exc:
            raise _not_answering(self.pvname, exc) from exc  # type: ignore[attr-defined]


class EpicsReadback(_FreshRead, EpicsSignalRO):
    """A read-only PV read fresh at every ``get``."""


class EpicsSetting(_FreshRead, EpicsSignal):
    """A setting: put with completion, then refused (:class:`LimitError` with the IOC's
    message) when the IOC raised the PV's alarm."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("put_complete", True)
        super().__init__(*args, **kwargs)

    def _encode(self, value: Any) -> Any:
        return value

    def _check_refused(self, before: int) -> None:
        """Raise :class:`LimitError` when the IOC refused this PV's put: its count of refused
        puts grew and its last message names this PV (another client's refusal in between
        names another PV)."""
        if _refusals(self) <= before:
            return
        msg = _ioc_message(self)
        if msg.startswith(self.pvname + ":"):
            raise LimitError(msg)

    def set(self, value: Any, *, timeout: float | None = None, settle_time: float | None = None,
            **kwargs: Any) -> Status:
        """Put; the status finishes when the IOC completed the put, or fails with
        :class:`LimitError` (refused) / :class:`IOCNotAnswering`."""
        status = Status(self, timeout=None)
        done = threading.Event()

        def completed(*args: Any, **kw: Any) -> None:
            done.set()

        def worker() -> None:
            try:
                limit = time.monotonic() + (timeout if timeout is not None else _wait_s(self))
                while not done.wait(0.25):  # a killed IOC answers no put: notice it
                    if not self.connected or time.monotonic() > limit:
                        raise _not_answering(self.pvname)
                self._check_refused(before)
            except Exception as exc:  # noqa: BLE001 - reported through the status
                status.set_exception(exc)
                return
            status.set_finished()

        self.check_value(value)
        before = _refusals(self)
        try:
            EpicsSignal.put(self, self._encode(value), callback=completed, use_complete=True)
        except TimeoutError as exc:
            raise _not_answering(self.pvname, exc) from exc
        threading.Thread(target=worker, daemon=True, name=f"put-{self.name}").start()
        return status

    def put(self, value: Any, *, timeout: float | None = None, **kwargs: Any) -> None:
        st = self.set(value, timeout=timeout)
        try:
            st.wait()
        except Exception as exc:  # ophyd wraps the status's exception
            raise (st.exception() or exc) from None


def _wait_s(sig: Any) -> float:
    """How long a put may take: the operation's scaled instrument time is bounded by the
    IOC's time scale x a frame or a move; wait generously, then call it not answering."""
    return CA_TIMEOUT_S + float(getattr(sig.root, "max_operation_s", 600.0))


class _LongString:
    """Mixin: a long string served as a CHAR waveform (paths, JSON, messages), read and
    written as char arrays (a DBR_STRING would cut it at 40 characters)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["string"] = False
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]

    def get(self, **kwargs: Any) -> str:
        return _decode_chars(super().get(**kwargs))  # type: ignore[misc]

    def _encode(self, value: Any) -> Any:
        import numpy as np

        return np.frombuffer(str(value).encode() + b"\0", dtype=np.uint8)

    def describe(self) -> dict[str, dict[str, Any]]:
        desc = super().describe()  # type: ignore[misc]
        for d in desc.values():
            d.update(dtype="string", shape=[])
            d.pop("dtype_numpy", None)
        return desc


def _decode_chars(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    else:
        import numpy as np

        raw = np.asarray(value, dtype=np.uint8).tobytes()
    return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")


class EpicsLongString(_LongString, EpicsReadback):
    """A read-only long string PV."""


class EpicsLongStringSetting(_LongString, EpicsSetting):
    """A long string setting (a path)."""


class EpicsStringSetting(EpicsSetting):
    """A short string setting (DBR_STRING, e.g. the lock-in output)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["string"] = True
        super().__init__(*args, **kwargs)

    def describe(self) -> dict[str, dict[str, Any]]:
        desc = super().describe()
        for d in desc.values():  # the CA layer reports a string's limits as bytes
            for key in ("lower_ctrl_limit", "upper_ctrl_limit", "limits"):
                d.pop(key, None)
        return desc


class _Bool:
    """Mixin: an enum PV (0/1) as bool (described as ophyd describes a bool: integer)."""

    def get(self, **kwargs: Any) -> bool:
        return bool(super().get(**kwargs))  # type: ignore[misc]

    def _encode(self, value: Any) -> int:
        return int(bool(value))


class EpicsBoolSetting(_Bool, EpicsSetting):
    """An on/off setting (enum PV) as bool."""


class PolledStatus(_Bool, EpicsReadback):
    """A boolean status read fresh; its value subscriptions run when a read finds that it
    changed (no monitor: see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._last: bool | None = None
        self._poll_lock = threading.RLock()
        super().__init__(*args, **kwargs)

    def subscribe(self, callback: Callable, event_type: str | None = None,
                  run: bool = True) -> int:
        return OphydObject.subscribe(self, callback, event_type=event_type, run=run)

    def get(self, **kwargs: Any) -> bool:
        value = super().get(**kwargs)
        with self._poll_lock:
            old, self._last = self._last, value
            if old is not None and old != value:
                ts = time.time()
                self._run_subs(sub_type=self.SUB_VALUE, old_value=old, value=value,
                               timestamp=ts)
        return value


# ---------------------------------------------------------------------------- axes
class EpicsAxis(Device, PositionerBase):
    """A positioner whose move is one put with completion to ``setpoint`` (the IOC
    completes it when the motion is over); ``readback`` named like the axis (hinted)."""

    setpoint: Any = None
    readback: Any = None
    stop_signal: Any = None

    def __init__(self, prefix: str = "", *, name: str, limits: tuple[float, float] | None = None,
                 egu: str = "", **kwargs: Any) -> None:
        super().__init__(prefix, name=name, **kwargs)
        self._limits = None if limits is None else (float(limits[0]), float(limits[1]))
        self._egu = egu
        self.readback.name = self.name
        self._pending: MoveStatus | None = None
        # readback subscriptions (a pseudo axis over this one needs them): a CA monitor
        self.readback.subscribe(self._readback_changed, run=False)

    def _readback_changed(self, value: Any = None, **kwargs: Any) -> None:
        if value is not None:
            self._set_position(float(value))

    @property
    def position(self) -> float:
        return float(self.readback.get())

    @property
    def egu(self) -> str:
        return self._egu

    @property
    def limits(self) -> tuple[float, float]:
        if self._limits is None:
            self._limits = self._read_limits()
        return self._limits

    def _read_limits(self) -> tuple[float, float]:
        return (0.0, 0.0)

    @property
    def moving(self) -> bool:
        return self._pending is not None and not self._pending.done

    def check_value(self, value: float) -> None:
        try:
            v = float(value)
        except (TypeError, ValueError) as exc:
            raise LimitError(f"{self.name}: position {value!r} is not a number") from exc
        low, high = self.limits
        if low < high and not low <= v <= high:
            unit = f" {self.egu}" if self.egu else ""
            raise LimitError(f"{self.name}: {v:g}{unit} outside the limits {low:g}-{high:g}{unit}")

    def move(self, position: float, wait: bool = False, moved_cb: Callable | None = None,
             timeout: float | None = None) -> MoveStatus:
        """Check the limits (nothing moves when outside), put the setpoint; the status
        finishes on the put completion or fails with the IOC's refusal / fault."""
        self.check_value(position)
        target = float(position)
        status = MoveStatus(self, target, timeout=timeout, settle_time=0)
        if moved_cb is not None:
            status.add_callback(lambda st: moved_cb(st, obj=self))
        self._pending = status
        self._run_subs(sub_type=self.SUB_START, timestamp=time.time())
        put = self.setpoint.set(target)

        def finished(st: Status) -> None:
            exc = st.exception()
            if exc is None:
                if not status.done:
                    status.set_finished()
            elif not status.done:
                status.set_exception(exc if isinstance(exc, (LimitError, IOCNotAnswering))
                                     else DeviceFault(f"{self.name}: {exc}"))
            self._run_subs(sub_type=self.SUB_DONE, timestamp=time.time())

        put.add_callback(finished)
        if wait:
            status.wait()
        return status

    def set(self, new_position: float, *, timeout: float | None = None,
            moved_cb: Callable | None = None, wait: bool = False) -> MoveStatus:
        return self.move(new_position, wait=wait, moved_cb=moved_cb, timeout=timeout)

    def stop(self, *, success: bool = False) -> None:
        if self.stop_signal is not None and self.moving:
            try:
                EpicsSignal.put(self.stop_signal, 1)
            except Exception:  # noqa: BLE001 - stopping a disconnected axis: nothing to do
                pass

    def locate(self) -> dict[str, float]:
        return {"setpoint": float(self.setpoint.get()), "readback": self.position}


class EpicsPumpWavelength(EpicsAxis):
    """The pump's tuning axis (nm): ``Wavelength-SP`` (put completes when tuned),
    ``Wavelength-RB``; ``Wavelength-DMOV`` and ``TuneTime-RB`` for humans."""

    setpoint = Cpt(EpicsSetting, "Wavelength-SP", kind="normal")
    readback = Cpt(EpicsReadback, "Wavelength-RB", kind="hinted")
    dmov = Cpt(EpicsReadback, "Wavelength-DMOV", kind="omitted")
    tune_time = Cpt(EpicsReadback, "TuneTime-RB", kind="omitted")

    def __init__(self, prefix: str = "", *, name: str, **kwargs: Any) -> None:
        kwargs.setdefault("egu", "nm")
        super().__init__(prefix, name=name, **kwargs)

    def _read_limits(self) -> tuple[float, float]:
        self.setpoint.get(form="ctrl")
        low, high = self.setpoint.low_limit, self.setpoint.high_limit
        return (float(low), float(high)) if low is not None and high is not None else (0., 0.)


class EpicsStageAxis(EpicsAxis):
    """One motor record of the stage: ``.VAL`` (put completes at the end of the motion),
    ``.RBV``, ``.DMOV``, ``.STOP``, limits from ``.LLM`` / ``.HLM``."""

    setpoint = Cpt(EpicsSetting, ".VAL", kind="normal")
    readback = Cpt(EpicsReadback, ".RBV", kind="hinted")
    dmov = Cpt(EpicsReadback, ".DMOV", kind="omitted")
    stop_signal = Cpt(EpicsSignal, ".STOP", kind="omitted")
    high_limit = Cpt(EpicsReadback, ".HLM", kind="omitted")
    low_limit = Cpt(EpicsReadback, ".LLM", kind="omitted")

    def __init__(self, prefix: str = "", *, name: str, **kwargs: Any) -> None:
        kwargs.setdefault("egu", "um")
        super().__init__(prefix, name=name, **kwargs)

    def _read_limits(self) -> tuple[float, float]:
        return (float(self.low_limit.get()), float(self.high_limit.get()))


# ---------------------------------------------------------------------------- devices
class EpicsDevice(Labelled, Device):
    """Base of the EPICS part devices: :meth:`refresh` reads their status signals."""

    def refresh(self) -> None:
        for walk in self.walk_signals(include_lazy=False):
            if isinstance(walk.item, PolledStatus):
                walk.item.get()


class EpicsPumpLaser(EpicsDevice):
    """The pump laser (prefix ``<ioc>Pump:``); components as :class:`~.lasers.PumpLaser`."""

    default_labels = ("lasers",)

    wavelength = Cpt(EpicsPumpWavelength, "", kind="normal")
    power = Cpt(EpicsSetting, "Power-SP", kind="config")
    shutter = Cpt(EpicsBoolSetting, "Shutter", kind="config")
    mode_locked = Cpt(PolledStatus, "ModeLocked-RB", kind="normal")
    pulse_ps = Cpt(EpicsReadback, "PulseWidth-RB", kind="config")
    rep_rate_mhz = Cpt(EpicsReadback, "RepRate-RB", kind="config")

    def __init__(self, prefix: str = "", *, name: str, **kwargs: Any) -> None:
        super().__init__(prefix, name=name, **kwargs)
        self.wavelength.readback.kind = "normal"  # plots hint the Raman shift, not nm


class EpicsStokesLaser(EpicsDevice):
    """The Stokes laser (``<ioc>Stokes:``); components as :class:`~.lasers.StokesLaser`."""

    default_labels = ("lasers",)

    wavelength = Cpt(EpicsReadback, "Wavelength-RB", kind="config")
    power = Cpt(EpicsSetting, "Power-SP", kind="config")
    shutter = Cpt(EpicsBoolSetting, "Shutter", kind="config")


class EpicsEOM(EpicsDevice):
    """The EOM (``<ioc>EOM:``); components as :class:`~.eom.EOM`."""

    default_labels = ("modulators",)

    frequency = Cpt(EpicsSetting, "Frequency-SP", kind="config")
    depth = Cpt(EpicsSetting, "Depth-SP", kind="config")
    enabled = Cpt(EpicsBoolSetting, "Enable", kind="config")


class EpicsPhotodiode(EpicsDevice):
    """The photodiode (``<ioc>PD:``); components as :class:`~.photodiode.Photodiode`."""

    default_labels = ("sensors",)

    responsivity = Cpt(EpicsReadback, "Responsivity-RB", kind="config")
    bias = Cpt(EpicsSetting, "Bias-SP", kind="config")
    saturated = Cpt(PolledStatus, "Saturated-RB", kind="normal")


class EpicsLockInAmplifier(EpicsDevice):
    """The lock-in (``<ioc>LockIn:``); components as :class:`~.lockin.LockInAmplifier`."""

    default_labels = ("amplifiers",)

    time_constant = Cpt(EpicsSetting, "TimeConstant-SP", kind="config")
    filter_order = Cpt(EpicsSetting, "FilterOrder-SP", kind="config")
    sensitivity = Cpt(EpicsSetting, "Sensitivity-SP", kind="config")
    phase = Cpt(EpicsSetting, "Phase-SP", kind="config")
    output = Cpt(EpicsStringSetting, "Output-SP", kind="config")
    reference_frequency = Cpt(EpicsReadback, "RefFreq-RB", kind="config")
    overload = Cpt(PolledStatus, "Overload-RB", kind="normal")
    overload_px = Cpt(EpicsReadback, "OverloadPx-RB", kind="normal")


class EpicsPMT(EpicsDevice):
    """The SHG PMT (``<ioc>PMT:``); components as :class:`~.pmt.PMT`."""

    default_labels = ("sensors",)

    voltage = Cpt(EpicsSetting, "Voltage-SP", kind="config")
    gain = Cpt(EpicsReadback, "Gain-RB", kind="config")
    enabled = Cpt(EpicsBoolSetting, "Enable", kind="config")
    tripped = Cpt(PolledStatus, "Tripped-RB", kind="normal")
    saturated_px = Cpt(EpicsReadback, "SaturatedPx-RB", kind="normal")
    reset = Cpt(EpicsSetting, "Reset", kind="omitted")

    def reset_trip(self) -> None:
        """Re-arm the overlight protection (same as ``reset.put(1)``)."""
        self.reset.put(1)
        self.tripped.get()


class EpicsGalvoScanner(EpicsDevice):
    """The galvo scanner (``<ioc>Scan:``); components as :class:`~.scanner.GalvoScanner`."""

    default_labels = ("scanners",)

    pixels = Cpt(EpicsSetting, "Pixels-SP", kind="config")
    fov = Cpt(EpicsSetting, "FOV-SP", kind="config")
    zoom = Cpt(EpicsSetting, "Zoom-SP", kind="config")
    dwell = Cpt(EpicsSetting, "Dwell-SP", kind="config")
    averages = Cpt(EpicsSetting, "Averages-SP", kind="config")
    bidirectional = Cpt(EpicsBoolSetting, "Bidirectional-SP", kind="config")
    pixel_size = Cpt(EpicsReadback, "PixelSize-RB", kind="config")
    frame_time = Cpt(EpicsReadback, "FrameTime-RB", kind="config")
    acquisition_time = Cpt(EpicsReadback, "AcqTime-RB", kind="config")


class EpicsXYZStage(EpicsDevice):
    """The stage (``<ioc>Stage:``): motor records ``X``, ``Y``, ``Z`` and
    ``FollowingError-RB``; components as :class:`~.stage.XYZStage`."""

    default_labels = ("motors",)

    x = Cpt(EpicsStageAxis, "X", kind="hinted")
    y = Cpt(EpicsStageAxis, "Y", kind="hinted")
    z = Cpt(EpicsStageAxis, "Z", kind="normal")
    following_error = Cpt(PolledStatus, "FollowingError-RB", kind="normal")

    def __init__(self, prefix: str = "", *, name: str, **kwargs: Any) -> None:
        super().__init__(prefix, name=name, **kwargs)
        self.z.readback.kind = "normal"  # grid plots hint x and y

    def clear_fault(self) -> None:
        """Acknowledge a following error (the next move runs normally)."""
        import ophyd

        pv = ophyd.cl.get_pv(self.prefix + "FollowingErrorFault")
        if not pv.wait_for_connection(timeout=CA_TIMEOUT_S):
            raise _not_answering(pv.pvname)
        pv.put(0, wait=True, timeout=CA_TIMEOUT_S)
        self.following_error.get()


class EpicsRamanShiftAxis(RealMoveFailures, PseudoPositioner):
    """Raman shift (cm^-1) over the pump's EPICS tuning axis; as
    :class:`~.raman.RamanShiftAxis` (``shift`` hinted, ``pump_nm`` omitted). The Stokes
    wavelength is read from ``<ioc>Stokes:Wavelength-RB``."""

    default_labels = ("motors",)

    shift = Cpt(PseudoSingle, egu="cm^-1", kind="hinted")
    pump_nm = Cpt(EpicsPumpWavelength, "Pump:", kind="omitted")
    stokes_wavelength = Cpt(EpicsReadback, "Stokes:Wavelength-RB", kind="omitted")

    def __init__(self, prefix: str = "", *, name: str, **kwargs: Any) -> None:
        self._stokes_nm: float | None = None
        self._move_status = None
        labels = kwargs.pop("labels", None)
        super().__init__(prefix, name=name, labels=set(self.default_labels if labels is None
                                                       else labels), **kwargs)
        self.shift.readback.name = self.name

    @property
    def stokes_nm(self) -> float:
        if self._stokes_nm is None:
            self._stokes_nm = float(self.stokes_wavelength.get())
        return self._stokes_nm

    def update_limits(self) -> tuple[float, float]:
        """Shift limits from the pump's range and the Stokes wavelength (read over CA)."""
        from simulators.spectra import raman_shift_cm1

        lo_nm, hi_nm = self.pump_nm.limits
        a = float(raman_shift_cm1(hi_nm, self.stokes_nm))
        b = float(raman_shift_cm1(lo_nm, self.stokes_nm))
        self.shift._limits = (min(a, b), max(a, b))
        return self.shift._limits

    @pseudo_position_argument
    def forward(self, pseudo_pos):
        from simulators.spectra import pump_nm_for_shift

        return self.RealPosition(
            pump_nm=float(pump_nm_for_shift(pseudo_pos.shift, self.stokes_nm)))

    @real_position_argument
    def inverse(self, real_pos):
        from simulators.spectra import raman_shift_cm1

        return self.PseudoPosition(shift=float(raman_shift_cm1(real_pos.pump_nm,
                                                               self.stokes_nm)))

    @property
    def real_position(self):
        return self.RealPosition(*(r.position for r in self._real))

    def check_value(self, pseudo_pos) -> None:
        pseudo_pos = self.PseudoPosition(*pseudo_pos)
        low, high = self.shift.limits
        v = float(pseudo_pos.shift)
        if low < high and not low <= v <= high:
            raise LimitError(f"{self.name}: Raman shift {v:g} cm^-1 outside {low:.1f}-{high:.1f} "
                             f"cm^-1 (pump range with Stokes {self.stokes_nm:g} nm)")
        for real, pos in zip(self._real, self.forward(pseudo_pos)):
            real.check_value(pos)


    def refresh(self) -> None:
        """Nothing to poll (the pump device reads the laser's status)."""


class EpicsSRASHDetector(FrameFiles, Labelled, Device):
    """The frame detector (``<ioc>Det:``): components as
    :class:`~.detector.SRASHDetector` plus the areaDetector-style records (omitted)."""

    default_labels = ("imaging",)

    srs_mean = Cpt(EpicsReadback, "SrsMean_RBV", kind="hinted")
    shg_mean = Cpt(EpicsReadback, "ShgMean_RBV", kind="hinted")
    frame_raman_shift = Cpt(EpicsReadback, "FrameRamanShift_RBV", kind="normal")
    frame_pump_nm = Cpt(EpicsReadback, "FramePumpNm_RBV", kind="normal")
    frame_pump_mw = Cpt(EpicsReadback, "FramePumpMw_RBV", kind="normal")
    frame_stokes_mw = Cpt(EpicsReadback, "FrameStokesMw_RBV", kind="normal")
    frame_x = Cpt(EpicsReadback, "FrameX_RBV", kind="normal")
    frame_y = Cpt(EpicsReadback, "FrameY_RBV", kind="normal")
    frame_number = Cpt(EpicsReadback, "FrameNumber_RBV", kind="normal")
    channel_names = Cpt(Signal, value=",".join(DETECTOR_CHANNELS), kind="config")
    max_overload_px = Cpt(EpicsSetting, "MaxOverloadPx", kind="config")
    # areaDetector-style records
    acquire = Cpt(EpicsSetting, "Acquire", kind="omitted")
    acquire_time = Cpt(EpicsReadback, "AcquireTime_RBV", kind="omitted")
    array_counter = Cpt(EpicsReadback, "ArrayCounter_RBV", kind="omitted")
    file_path = Cpt(EpicsLongStringSetting, "FilePath", kind="omitted")
    file_name = Cpt(EpicsLongStringSetting, "FileName", kind="omitted")
    file_number = Cpt(EpicsSetting, "FileNumber", kind="omitted")
    full_file_name = Cpt(EpicsLongString, "FullFileName_RBV", kind="omitted")
    write_status = Cpt(EpicsReadback, "WriteStatus", kind="omitted")
    write_message = Cpt(EpicsLongString, "WriteMessage", kind="omitted")
    sync_frames_pv = Cpt(EpicsBoolSetting, "SyncFrames", kind="omitted")

    _UNITS = {"srs_mean": "V", "shg_mean": "V", "frame_raman_shift": "cm^-1",
              "frame_pump_nm": "nm", "frame_pump_mw": "mW", "frame_stokes_mw": "mW",
              "frame_x": "um", "frame_y": "um"}

    def __init__(self, prefix: str = "", *, name: str, data_dir: str | Path | None = None,
                 parent: Any = None, **kwargs: Any) -> None:
        self._data_dir = None if data_dir is None else Path(data_dir)
        self._lock = threading.RLock()
        self._asset_docs: deque = deque()
        self._compose_datum: Any = None
        self._resource_doc: dict | None = None
        self._resource_sent = False
        self._folder: Path | None = None
        self._index = 0
        self._staged_shape: tuple[int, int, int] | None = None
        self.last_path: Path | None = None
        super().__init__(prefix, name=name, parent=parent, **kwargs)
        base = parent.name if parent is not None else self.name
        self.image_key = f"{base}_image"
        if parent is not None:  # short data keys, as the in-process detector
            for attr in self.component_names:
                getattr(self, attr).name = f"{base}_{attr}"

    @property
    def data_dir(self) -> Path:
        d = self._data_dir if self._data_dir is not None else getattr(self.parent, "data_dir",
                                                                      None)
        if d is None:
            raise SrashError(f"{self.name}: no data_dir to point the IOC's FilePath at")
        return Path(d)

    def _pixels(self) -> int:
        scanner = getattr(self.parent, "scanner", None)
        if scanner is None:
            import ophyd

            pv = ophyd.cl.get_pv(self.prefix.rsplit("Det:", 1)[0] + "Scan:Pixels-SP")
            pv.wait_for_connection(timeout=CA_TIMEOUT_S)
            return int(pv.get(timeout=CA_TIMEOUT_S, use_monitor=False))
        return int(scanner.pixels.get())

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        n = self._pixels()
        return (len(DETECTOR_CHANNELS), n, n)

    def describe(self) -> dict[str, dict[str, Any]]:
        desc = super().describe()
        for attr, unit in self._UNITS.items():
            desc[getattr(self, attr).name]["units"] = unit
        shape = self._staged_shape or self.frame_shape
        desc[self.image_key] = {
            "source": f"PV:{self.prefix}FullFileName_RBV", "dtype": "array",
            "dtype_numpy": "<f4", "shape": list(shape), "dims": ["channel", "y", "x"],
            "external": "STREAM:", "units": "V", "channel_names": list(DETECTOR_CHANNELS)}
        return desc

    def stage(self) -> list[object]:
        with self._lock:
            uid = self._begin_staging()
            self.file_path.put(str(self._folder) + "/")
            name = self.file_name.get()
            if name:  # the layout is <folder>/<number>.ome.tif, as in process
                raise SrashError(f"{self.file_name.pvname} is {name!r}: clear it (the SRASH "
                                 "frames are named by number only)")
            self.file_number.put(0)
            self._compose_resource(uid)
        return super().stage()

    def trigger(self) -> DeviceStatus:
        """Acquire one frame on the IOC; the status finishes when the IOC wrote it, or
        fails with a :class:`DeviceFault` carrying the IOC's ``WriteMessage``."""
        if self._compose_datum is None:
            raise RuntimeError(f"{self.name} is not staged: stage() it (plans do) before "
                               "trigger()")
        status = DeviceStatus(self, call_stop_on_failure=False)
        put = self.acquire.set(1)

        def finished(st: Status) -> None:
            threading.Thread(target=self._after_acquire, args=(st, status), daemon=True,
                             name=f"{self.name}-written").start()

        put.add_callback(finished)
        return status

    def _after_acquire(self, put: Status, status: DeviceStatus) -> None:
        try:
            exc = put.exception()
            if exc is not None and not isinstance(exc, LimitError):
                raise exc
            if int(self.write_status.get()):
                raise DeviceFault(f"{self.name}: {self.write_message.get()}")
            with self._lock:
                i = self._index
                expected = self._folder / FILE_TEMPLATE.format(i)
                written = Path(str(self.full_file_name.get()))
                if written != expected:
                    raise DeviceFault(f"{self.name}: the IOC wrote {written}, expected "
                                      f"{expected} (another client changed Det:FilePath or "
                                      "Det:FileNumber during the run)")
                self.last_path = written
                if not self._resource_sent:
                    self._asset_docs.append(("stream_resource", self._resource_doc))
                    self._resource_sent = True
                self._asset_docs.append(
                    ("stream_datum", self._compose_datum(indices={"start": i, "stop": i + 1})))
                self._index = i + 1
        except Exception as exc:  # noqa: BLE001 - reported through the status
            status.set_exception(exc)
            return
        status.set_finished()



class EpicsSRASHMicroscope(DetectorFront, Labelled, Device):
    """The SRASH microscope over Channel Access: the components of
    :class:`~.microscope.SRASHMicroscope` (same names and kinds) on the PVs of one IOC
    (``prefix``, e.g. ``SRASH:``), plus the instrument-wide ``interlock`` status (omitted
    from readings; the suspenders watch it). Itself the image-producing detector."""

    default_labels = ("detectors",)

    pump = Cpt(EpicsPumpLaser, "Pump:", kind="normal")
    stokes = Cpt(EpicsStokesLaser, "Stokes:", kind="config")
    raman = Cpt(EpicsRamanShiftAxis, "", kind="hinted")
    eom = Cpt(EpicsEOM, "EOM:", kind="config")
    photodiode = Cpt(EpicsPhotodiode, "PD:", kind="normal")
    lockin = Cpt(EpicsLockInAmplifier, "LockIn:", kind="normal")
    pmt = Cpt(EpicsPMT, "PMT:", kind="normal")
    scanner = Cpt(EpicsGalvoScanner, "Scan:", kind="config")
    xyz = Cpt(EpicsXYZStage, "Stage:", kind="hinted")
    detector = Cpt(EpicsSRASHDetector, "Det:", kind="hinted")
    interlock = Cpt(PolledStatus, "Interlock-RB", kind="omitted")
    time_scale_pv = Cpt(EpicsSetting, "TimeScale", kind="omitted")
    info_pv = Cpt(EpicsLongString, "Info-RB", kind="omitted")
    settings_pv = Cpt(EpicsLongString, "Settings-RB", kind="omitted")
    calibration_pv = Cpt(EpicsLongString, "Calibration-RB", kind="omitted")

    #: longest operation a put may take before the IOC counts as not answering (wall s)
    max_operation_s = 600.0

    def __init__(self, prefix: str = "SRASH:", *, name: str, data_dir: str | Path,
                 **kwargs: Any) -> None:
        self.data_dir = Path(data_dir)
        super().__init__(prefix, name=name, **kwargs)

    # ------------------------------------------------------------------ connection
    def connect(self, timeout: float = CA_TIMEOUT_S) -> "EpicsSRASHMicroscope":
        """Wait for every PV (:class:`IOCNotAnswering` when the IOC does not answer), then
        read the axis and Raman-shift limits."""
        try:
            self.wait_for_connection(all_signals=False, timeout=timeout)
        except TimeoutError as exc:
            raise IOCNotAnswering(
                f"the IOC with prefix {self.prefix!r} does not answer within {timeout:g} s "
                f"({exc}); start it with `srash ioc --prefix {self.prefix}` and check "
                "EPICS_CA_ADDR_LIST / EPICS_CA_SERVER_PORT") from exc
        for axis in (self.xyz.x, self.xyz.y, self.xyz.z, self.pump.wavelength,
                     self.raman.pump_nm):
            axis._limits = None
            axis.limits  # noqa: B018 - read now, not inside a plan
        self.raman.update_limits()
        return self

    # ------------------------------------------------------------------ knobs
    @property
    def time_scale(self) -> float:
        return float(self.time_scale_pv.get())

    @time_scale.setter
    def time_scale(self, value: float) -> None:
        self.time_scale_pv.put(float(value))

    def ioc_info(self) -> dict[str, Any]:
        """What the IOC was started with (specimen, phenotype, seeds)."""
        return dict(json.loads(self.info_pv.get() or "{}"))

    def sim_settings(self) -> dict[str, Any]:
        """The IOC simulator's settings (as ``mic.sim.settings()`` in process)."""
        return dict(json.loads(self.settings_pv.get() or "{}"))

    def calibration(self) -> dict[str, Any]:
        """The IOC instrument's calibration at its current settings."""
        return dict(json.loads(self.calibration_pv.get() or "{}"))

    def refresh(self) -> None:
        """Read every status signal (runs the subscriptions of the changed ones)."""
        self.interlock.get()
        for attr in ("pump", "photodiode", "lockin", "pmt", "xyz"):
            getattr(self, attr).refresh()

    # ------------------------------------------------------------------ detector
    def trigger(self):
        """Read the statuses (a suspender watching one sees a fault here), then acquire;
        with the interlock open or mode-lock lost no frame is started: the status fails at
        once, so no frame is in flight while the run is suspended (one finishing later
        would announce a file that no event uses)."""
        self.refresh()
        problems = []
        if self.interlock._last is False:
            problems.append("laser-safety shutter interlock open")
        if self.pump.mode_locked._last is False:
            problems.append("pump laser lost mode-lock")
        if problems:
            status = DeviceStatus(self.detector, call_stop_on_failure=False)
            status.set_exception(DeviceFault(f"{self.detector.name}: frame not started: "
                                             + "; ".join(problems)))
            return status
        return self.detector.trigger()

    @property
    def faults(self) -> dict[str, Any]:
        """Current status signals of the parts (what suspenders watch)."""
        self.refresh()
        return {"mode_locked": self.pump.mode_locked.get(),
                "lockin_overload": self.lockin.overload.get(),
                "pmt_tripped": self.pmt.tripped.get(),
                "stage_following_error": self.xyz.following_error.get(),
                "interlock_closed": self.interlock.get()}
