"""Named exceptions of the simulators.

Every invalid setting raises a subclass of :class:`SettingsError` whose message says what
was wrong *and* what is allowed, e.g. ``pump wavelength 1200 nm outside 700-990 nm``.
"""

from __future__ import annotations


class SimulatorError(Exception):
    """Base class of every error raised by :mod:`simulators`."""


class SettingsError(SimulatorError, ValueError):
    """An instrument or specimen setting is invalid (wrong type, out of range)."""


class OutOfRangeError(SettingsError):
    """A numeric setting lies outside its allowed range."""

    def __init__(self, name: str, value: float, low: float, high: float, unit: str = "") -> None:
        u = f" {unit}" if unit else ""
        super().__init__(f"{name} {value:g}{u} outside allowed range {low:g}-{high:g}{u}")
        self.name, self.value, self.low, self.high, self.unit = name, value, low, high, unit


class SafetyLimitError(SettingsError):
    """A setting would exceed a laser-safety / photodamage limit."""


class HardwareFault(SimulatorError):
    """A simulated hardware fault (mode-lock loss, overlight trip, following error...)."""


def check_range(name: str, value: float, low: float, high: float, unit: str = "") -> float:
    """Return ``float(value)`` or raise :class:`OutOfRangeError` (NaN is out of range)."""
    v = float(value)
    if not (low <= v <= high):
        raise OutOfRangeError(name, v, low, high, unit)
    return v


def check_positive(name: str, value: float, unit: str = "", *, allow_zero: bool = False) -> float:
    """Return ``float(value)`` if it is > 0 (or >= 0), else raise :class:`SettingsError`."""
    v = float(value)
    ok = (v >= 0) if allow_zero else (v > 0)
    if not ok or v != v or v == float("inf"):
        cmp = ">= 0" if allow_zero else "> 0"
        u = f" {unit}" if unit else ""
        raise SettingsError(f"{name} {v:g}{u} is not allowed: must be finite and {cmp}")
    return v
