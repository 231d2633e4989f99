"""Motorised XYZ stage (micrometres) with limits, repeatability and a following-error fault."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from simulators.config import ConfigMixin
from simulators.errors import HardwareFault, OutOfRangeError, check_positive

AXES = ("x", "y", "z")


@dataclasses.dataclass(frozen=True)
class StageConfig(ConfigMixin):
    """Travel limits (um, symmetric about 0 unless set), speed (um/s), settle time (s) and
    repeatability (1-sigma position error of a move, um; docs/physics-notes.md, Scanner)."""

    x_limits_um: tuple[float, float] = (-25000.0, 25000.0)
    y_limits_um: tuple[float, float] = (-25000.0, 25000.0)
    z_limits_um: tuple[float, float] = (-500.0, 500.0)
    speed_um_s: float = 5000.0
    z_speed_um_s: float = 200.0
    settle_s: float = 0.05
    repeatability_um: float = 1.0

    def __post_init__(self) -> None:
        for ax in AXES:
            lo, hi = getattr(self, f"{ax}_limits_um")
            if not lo < hi:
                raise OutOfRangeError(f"{ax} limits", lo, lo, hi, "um")
        check_positive("stage speed", self.speed_um_s, "um/s")
        check_positive("z speed", self.z_speed_um_s, "um/s")
        check_positive("repeatability", self.repeatability_um, "um", allow_zero=True)

    def limits(self, axis: str) -> tuple[float, float]:
        return getattr(self, f"{axis}_limits_um")


class XYZStageSim:
    """State: ``target`` (commanded, um) and ``position`` (actual, um) per axis.

    :meth:`move` checks every limit before anything moves, then moves; the actual position
    differs from the target by the repeatability error (drawn from the passed generator).
    """

    def __init__(self, config: StageConfig | None = None) -> None:
        self.config = config or StageConfig()
        self.target = {ax: 0.0 for ax in AXES}
        self.position = {ax: 0.0 for ax in AXES}
        self._following_error = False

    def check(self, axis: str, value: float) -> float:
        lo, hi = self.config.limits(axis)
        v = float(value)
        if not lo <= v <= hi:
            raise OutOfRangeError(f"stage {axis}", v, lo, hi, "um")
        return v

    def move_time_s(self, **targets: float) -> float:
        """Time (s) for a move: the slowest axis at constant speed, plus settle."""
        t = 0.0
        for ax, v in targets.items():
            speed = self.config.z_speed_um_s if ax == "z" else self.config.speed_um_s
            t = max(t, abs(float(v) - self.position[ax]) / speed)
        return t + (self.config.settle_s if t > 0 else 0.0)

    def move(self, rng: np.random.Generator | None = None, **targets: float) -> float:
        """Move axes (``x=..., y=..., z=...`` in um); returns the move time (s).

        Raises :class:`OutOfRangeError` before moving if any target is out of limits, and
        :class:`HardwareFault` (position left halfway) when a following error is injected.
        """
        unknown = set(targets) - set(AXES)
        if unknown:
            raise OutOfRangeError(f"unknown stage axis {sorted(unknown)}", math.nan, 0, 0)
        checked = {ax: self.check(ax, v) for ax, v in targets.items()}
        t = self.move_time_s(**checked)
        if self._following_error:
            for ax, v in checked.items():
                self.position[ax] = 0.5 * (self.position[ax] + v)
            raise HardwareFault("stage following error: motion aborted before the target "
                                f"{checked}; position now {self.position}")
        for ax, v in checked.items():
            self.target[ax] = v
            err = self.config.repeatability_um * float(rng.standard_normal()) if (
                rng is not None and self.config.repeatability_um > 0) else 0.0
            self.position[ax] = v + err
        return t

    def inject_following_error(self) -> None:
        """Fault hook: the next move aborts with a following error."""
        self._following_error = True

    def clear_fault(self) -> None:
        self._following_error = False

    @property
    def faulted(self) -> bool:
        return self._following_error
