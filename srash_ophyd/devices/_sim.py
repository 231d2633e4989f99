"""The simulator backend behind the SRASH ophyd devices: signals, axes, timing, errors.

Every device class in :mod:`srash_ophyd` fixes component *names* and behaviour; its signals
are bound to a part simulator (:mod:`simulators.parts`) held as ``device.backend``:

- :class:`SimBackedSignal` / :class:`SimBackedSignalRO`: ``get()`` reads the part, ``put()``
  range-checks (ophyd :class:`~ophyd.utils.LimitError` *before* anything changes) and calls the
  part's setter. Values are always fresh (read from the part), and value subscriptions run
  when a read finds that the part changed underneath (fault hooks, other devices), so
  suspenders can watch status signals such as ``pump.mode_locked``.
- :class:`SimAxis`: a positioner (``readback`` / ``setpoint``, limits, egu) whose move is
  validated synchronously and then carried out by the part after the simulated time.

The EPICS variants (``EpicsPumpLaser``, ``EpicsXYZStage``) keep the component names and swap
these classes for ``EpicsSignal`` / ``EpicsMotor``; nothing here is needed by them.

**Backend resolution.** A device built with ``backend=`` uses it. A component device inside
:class:`~srash_ophyd.devices.microscope.SRASHMicroscope` finds its part on the microscope's
``sim`` (:class:`simulators.instrument.SRASHSimulator`) by the class attribute ``_sim_part``
(``"pump"``, ``"stage"``...); a component of a device that has a backend (an axis of the
stage) shares its parent's. A standalone device with neither gets a fresh default part.

**Simulated time.** ``time_scale`` (a device argument, else inherited from the parent, else
0): 0 finishes statuses at once (the default: tests never sleep); > 0 finishes them after
``time_scale x`` the real instrument time (1.0 = as slow as the real microscope), the part's
state changing when the status finishes.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterable

from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.positioner import PositionerBase
from ophyd.status import MoveStatus, Status
from ophyd.utils import LimitError, ReadOnlyError

from simulators.errors import HardwareFault, OutOfRangeError, SafetyLimitError, SettingsError

__all__ = [
    "DeviceFault", "LaserSafetyError", "SimAxis", "SimBackedSignal", "SimBackedSignalRO",
    "SimDevice", "complete_after", "translate_limits",
]


# ---------------------------------------------------------------------------- errors
class LaserSafetyError(SafetyLimitError, LimitError):
    """Total laser power at the sample above the safety limit (refused, nothing changed).

    Both the simulators' :class:`~simulators.errors.SafetyLimitError` and ophyd's
    :class:`~ophyd.utils.LimitError`, so either ``except`` catches it."""


class DeviceFault(HardwareFault, RuntimeError):
    """A hardware fault that failed a status (mode-lock loss, overload, trip, following
    error). The message says what happened and what to do."""


def translate_limits(exc: Exception) -> Exception:
    """Map a simulator range error to ophyd's :class:`LimitError` (same message)."""
    if isinstance(exc, SafetyLimitError) and not isinstance(exc, LimitError):
        return LaserSafetyError(str(exc))
    if isinstance(exc, OutOfRangeError):
        return LimitError(str(exc))
    return exc


# ---------------------------------------------------------------------------- timing
#: Largest simulated-time factor: 10 x slower than the real instrument. Larger values (and
#: inf / NaN) would only hang a scan; a timer of inf seconds overflows the timer thread.
MAX_TIME_SCALE = 10.0


def check_time_scale(value: Any) -> float:
    """``value`` as a float in 0..:data:`MAX_TIME_SCALE`; ``ValueError`` saying what is
    allowed otherwise (NaN and inf included)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"time_scale {value!r} not allowed: give a number "
                         f"0..{MAX_TIME_SCALE:g}") from None
    if not 0.0 <= v <= MAX_TIME_SCALE:
        raise SettingsError(f"time_scale {value!r} not allowed: must be 0 (instant) .. "
                         f"{MAX_TIME_SCALE:g} (x real instrument time)")
    return v


def complete_after(status, seconds: float, action: Callable[[], None], *,
                   on_error: Callable[[Exception], Exception] | None = None
                   ) -> threading.Timer | None:
    """Run ``action`` and finish ``status`` after ``seconds`` (at once, synchronously, if
    ``seconds <= 0``). An exception from ``action`` fails the status with that exception
    (mapped through ``on_error``). Returns the timer (None when run at once)."""

    def finish() -> None:
        if status.done:  # stopped meanwhile
            return
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - reported through the status
            err = on_error(exc) if on_error is not None else exc
            if not status.done:
                status.set_exception(err)
            return
        if not status.done:
            status.set_finished()

    if seconds <= 0:
        finish()
        return None
    timer = threading.Timer(seconds, finish)
    timer.daemon = True
    timer.start()
    return timer


# ---------------------------------------------------------------------------- devices
class Labelled:
    """Mixin: ophyd labels by device class (``default_labels``), so that bluesky's IPython
    magics find the devices (``%wa`` lists the positioners of every labelled device in the
    namespace, ``%ct`` counts those labelled ``detectors``); ``labels=`` overrides."""

    default_labels: tuple[str, ...] = ()

    def __init__(self, *args: Any, labels: Iterable[str] | None = None, **kwargs: Any):
        super().__init__(*args, labels=set(self.default_labels if labels is None else labels),
                         **kwargs)


class SimDevice(Labelled, Device):
    """Base of the simulator-backed devices: ``backend`` (the part) and ``time_scale``.

    Parameters
    ----------
    backend : object, optional
        The part simulator; default: resolved as described in the module docstring.
    time_scale : float, optional
        Simulated-time factor; default: the parent's, else 0 (instant).
    labels : iterable of str, optional
        ophyd labels; default the class's ``default_labels`` (:class:`Labelled`).
    """

    #: Attribute of :class:`simulators.instrument.SRASHSimulator` holding this device's part.
    _sim_part: str | None = None

    def __init__(self, prefix: str = "", *, name: str, backend: Any = None,
                 time_scale: float | None = None, parent: Device | None = None, **kwargs: Any):
        self.backend = backend if backend is not None else self._resolve_backend(parent)
        self._time_scale = None if time_scale is None else check_time_scale(time_scale)
        super().__init__(prefix, name=name, parent=parent, **kwargs)

    # -- wiring
    def _resolve_backend(self, parent: Any) -> Any:
        sim = getattr(parent, "sim", None)
        if sim is not None and self._sim_part is not None:
            return getattr(sim, self._sim_part)
        if getattr(parent, "backend", None) is not None:
            return parent.backend
        return self._default_backend()

    def _default_backend(self) -> Any:
        raise TypeError(f"{type(self).__name__} needs a backend (part simulator)")

    def find_up(self, attr: str) -> Any:
        """``attr`` of the nearest ancestor (self excluded) that has it, else None."""
        p = self.parent
        while p is not None:
            if hasattr(p, attr):
                return getattr(p, attr)
            p = p.parent
        return None

    @property
    def time_scale(self) -> float:
        """Simulated-time factor (0 = instant); inherited from the parent when not set."""
        if self._time_scale is not None:
            return self._time_scale
        inherited = self.find_up("time_scale")
        return float(inherited) if inherited is not None else 0.0

    @time_scale.setter
    def time_scale(self, value: float | None) -> None:
        self._time_scale = None if value is None else check_time_scale(value)

    def refresh(self) -> None:
        """Re-read every backend signal (runs value subscriptions of those that changed)."""
        for walk in self.walk_signals(include_lazy=False):
            sig = walk.item
            if isinstance(sig, SimBackedSignal):
                sig.get()


# ---------------------------------------------------------------------------- signals
class SimBackedSignal(Signal):
    """A signal whose value lives in the parent device's backend.

    Parameters
    ----------
    getter : callable
        ``getter(device) -> value`` with ``device`` this signal's parent.
    setter : callable, optional
        ``setter(device, value)``; raises on bad input (simulator range errors become
        :class:`LimitError`). None makes the signal read-only.
    limits : (low, high) or callable, optional
        Checked before the setter (``LimitError``); a callable gets the device.
    egu : str, optional
        Engineering units, reported in ``describe()``.
    """

    def __init__(self, *, getter: Callable[[Any], Any],
                 setter: Callable[[Any, Any], None] | None = None,
                 limits: tuple[float, float] | Callable[[Any], tuple[float, float]] | None = None,
                 egu: str = "", value: Any = None, **kwargs: Any):
        self._getter = getter
        self._setter = setter
        self._limits = limits
        self._egu = egu
        self._sub_lock = threading.RLock()
        super().__init__(value=0.0 if value is None else value, **kwargs)
        if setter is None:
            self._metadata["write_access"] = False
        self._readback = self._fetch()

    def _fetch(self) -> Any:
        return self._getter(self.parent)

    @property
    def egu(self) -> str:
        return self._egu

    @property
    def limits(self) -> tuple[float, float]:
        lim = self._limits(self.parent) if callable(self._limits) else self._limits
        return (0, 0) if lim is None else (lim[0], lim[1])

    def check_value(self, value: Any) -> None:
        low, high = self.limits
        if low < high:
            try:
                ok = low <= value <= high
            except TypeError:
                ok = False
            if not ok:
                unit = f" {self._egu}" if self._egu else ""
                raise LimitError(f"{self.name}: {value!r}{unit} outside the limits "
                                 f"{low:g}-{high:g}{unit}")

    def get(self, **kwargs: Any) -> Any:
        value = self._fetch()
        with self._sub_lock:
            old = self._readback
            changed = _differs(old, value)
            self._readback = value
            if changed:
                ts = time.time()
                self._metadata["timestamp"] = ts
                self._run_subs(sub_type=self.SUB_VALUE, old_value=old, value=value, timestamp=ts)
        return value

    def put(self, value: Any, *, timestamp: float | None = None, force: bool = False,
            metadata: dict | None = None, **kwargs: Any) -> None:
        if self._setter is None:
            raise ReadOnlyError(f"{self.name} is read-only")
        if not force:
            self.check_value(value)
        try:
            self._setter(self.parent, value)
        except Exception as exc:
            new = translate_limits(exc)
            if new is exc:
                raise
            raise new from exc
        self.get()

    def set(self, value: Any, *, timeout: float | None = None, settle_time: float | None = None,
            **kwargs: Any) -> Status:
        """Put and return a finished status (settings of the parts take effect at once)."""
        self.put(value)
        st = Status(self)
        st.set_finished()
        return st

    def describe(self) -> dict[str, dict[str, Any]]:
        desc = super().describe()
        d = desc[self.name]
        if self._egu:
            d["units"] = self._egu
        low, high = self.limits
        if low < high:
            d["limits"] = {"control": {"low": float(low), "high": float(high)}}
        return desc

    @property
    def source_name(self) -> str:
        return f"SIM:{self.name}"


class SimBackedSignalRO(SimBackedSignal):
    """Read-only :class:`SimBackedSignal` (a readback or status)."""

    def __init__(self, *, getter: Callable[[Any], Any], **kwargs: Any):
        kwargs.pop("setter", None)
        super().__init__(getter=getter, setter=None, **kwargs)


def _differs(a: Any, b: Any) -> bool:
    try:
        return bool(a != b)
    except (ValueError, TypeError):  # arrays
        return True


# ---------------------------------------------------------------------------- axes
class SimAxis(SimDevice, PositionerBase):
    """A simulated positioner: ``readback`` (hinted, named like the axis), ``setpoint``.

    Subclasses implement :meth:`_read_position`, :meth:`_move_time_s` (instrument seconds),
    :meth:`_apply_move` (changes the part; may raise a simulator fault) and optionally
    :meth:`_validate_move` (extra synchronous checks). ``limits`` (low, high) are checked
    before anything moves and raise :class:`LimitError`.
    """

    readback = Cpt(SimBackedSignalRO, getter=lambda d: d._read_position(), kind="hinted")
    setpoint = Cpt(Signal, value=0.0, kind="normal")

    def __init__(self, prefix: str = "", *, name: str, limits: tuple[float, float] | None = None,
                 egu: str = "", **kwargs: Any):
        super().__init__(prefix, name=name, **kwargs)
        self._limits = tuple(limits) if limits is not None else self._default_limits()
        self._egu = egu or self._default_egu
        self.readback.name = self.name
        self.readback._egu = self._egu
        self.readback._limits = self._limits
        self.setpoint.put(self.position)
        self._pending: tuple[MoveStatus, threading.Timer | None] | None = None
        self._set_position(self.position)

    _default_egu = ""

    # -- to implement
    def _read_position(self) -> float:
        raise NotImplementedError

    def _default_limits(self) -> tuple[float, float]:
        return (0.0, 0.0)

    def _validate_move(self, position: float) -> None:
        """Extra checks before moving (raise to refuse)."""

    def _move_time_s(self, position: float) -> float:
        return 0.0

    def _apply_move(self, position: float) -> None:
        raise NotImplementedError

    def _fault_message(self, exc: Exception) -> Exception:
        if isinstance(exc, HardwareFault) and not isinstance(exc, DeviceFault):
            return DeviceFault(f"{self.name}: {exc}")
        return translate_limits(exc)

    # -- positioner API
    @property
    def position(self) -> float:
        return float(self._read_position())

    @property
    def egu(self) -> str:
        return self._egu

    @property
    def limits(self) -> tuple[float, float]:
        return self._limits

    @property
    def moving(self) -> bool:
        return self._pending is not None and not self._pending[0].done

    def check_value(self, value: float) -> None:
        low, high = self.limits
        try:
            v = float(value)
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"{self.name}: position {value!r} is not a number") from exc
        if low < high and not low <= v <= high:
            unit = f" {self.egu}" if self.egu else ""
            raise LimitError(f"{self.name}: {v:g}{unit} outside the limits {low:g}-{high:g}{unit}")

    def move(self, position: float, wait: bool = False, moved_cb: Callable | None = None,
             timeout: float | None = None) -> MoveStatus:
        """Check (LimitError, nothing moves), then move; returns a :class:`MoveStatus`."""
        self.check_value(position)
        try:
            self._validate_move(float(position))
        except Exception as exc:
            new = translate_limits(exc)
            if new is exc:
                raise
            raise new from exc
        target = float(position)
        seconds = self.time_scale * self._move_time_s(target)
        status = MoveStatus(self, target, timeout=timeout, settle_time=0)
        if moved_cb is not None:
            status.add_callback(lambda st: moved_cb(st, obj=self))
        self.setpoint.put(target)
        self._run_subs(sub_type=self.SUB_START, timestamp=time.time())
        self._started_moving = True
        self._moving = True

        def action() -> None:
            try:
                self._apply_move(target)
            finally:
                self._moving = False
                self._set_position(self.position)
                self.refresh()
            self._run_subs(sub_type=self.SUB_DONE, timestamp=time.time(), value=self.position)

        self._pending = (status, None)
        timer = complete_after(status, seconds, action, on_error=self._fault_message)
        if timer is not None:
            self._pending = (status, timer)
        if wait:
            status.wait()
        return status

    def set(self, new_position: float, *, timeout: float | None = None,
            moved_cb: Callable | None = None, wait: bool = False) -> MoveStatus:
        return self.move(new_position, wait=wait, moved_cb=moved_cb, timeout=timeout)

    def stop(self, *, success: bool = False) -> None:
        pending, self._pending = self._pending, None
        if pending is None:
            return
        status, timer = pending
        if timer is not None:
            timer.cancel()
        self._moving = False
        if not status.done:
            if success:
                status.set_finished()
            else:
                status.set_exception(DeviceFault(f"{self.name}: motion stopped before the target"))

    def locate(self) -> dict[str, float]:
        """bluesky ``Locatable``: setpoint and readback."""
        return {"setpoint": float(self.setpoint.get()), "readback": self.position}
