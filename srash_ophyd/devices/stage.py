"""Motorised XYZ stage in micrometres.

Backend: :class:`simulators.parts.stage.XYZStageSim`. Components:

================ ========================================= ======= ===== ======================
component        what                                      kind    egu   EPICS (EpicsXYZStage)
================ ========================================= ======= ===== ======================
x, y, z          axes (readback named ``<name>_x``...,     hinted  um    motor records ``X``,
                 ``setpoint``), limits from the stage                    ``Y``, ``Z``
following_error  a move aborted with a following error      normal        ``FollowingError-RB``
                 (status; clear with :meth:`clear_fault`)
================ ========================================= ======= ===== ======================

Out-of-limit targets raise :class:`~ophyd.utils.LimitError` before anything moves. A move
takes ``|d| / speed + settle`` of instrument time (x ``time_scale``); the actual position
differs from the target by the stage's repeatability (drawn from the device's ``rng``;
exact when there is none). A following error leaves the axis halfway and fails the move
status with :class:`~srash_ophyd.devices._sim.DeviceFault`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ophyd import Component as Cpt

from simulators.parts.stage import XYZStageSim

from ._sim import SimAxis, SimBackedSignalRO, SimDevice

__all__ = ["EpicsXYZStage", "StageAxis", "XYZStage"]


class StageAxis(SimAxis):
    """One axis of an :class:`XYZStageSim` (``axis`` = ``"x"``, ``"y"`` or ``"z"``)."""

    _sim_part = "stage"
    _default_egu = "um"

    def __init__(self, prefix: str = "", *, name: str, axis: str, **kwargs: Any):
        self.axis = axis
        super().__init__(prefix, name=name, **kwargs)

    def _default_backend(self) -> XYZStageSim:
        return XYZStageSim()

    def _read_position(self) -> float:
        return float(self.backend.position[self.axis])

    def _default_limits(self) -> tuple[float, float]:
        lo, hi = self.backend.config.limits(self.axis)
        return (float(lo), float(hi))

    def _move_time_s(self, position: float) -> float:
        return self.backend.move_time_s(**{self.axis: position})

    def _apply_move(self, position: float) -> None:
        rng = self.find_up("motion_rng")
        self.backend.move(rng, **{self.axis: position})


class XYZStage(SimDevice):
    """Three stage axes in micrometres with limits and a following-error status.

    ``rng`` (optional ``numpy.random.Generator``): draws the repeatability error of each
    move; inside a microscope the microscope's motion generator is used.
    """

    default_labels = ("motors",)

    _sim_part = "stage"

    x = Cpt(StageAxis, axis="x", kind="hinted")
    y = Cpt(StageAxis, axis="y", kind="hinted")
    z = Cpt(StageAxis, axis="z", kind="normal")
    following_error = Cpt(SimBackedSignalRO, getter=lambda d: bool(d.backend.faulted),
                          kind="normal")

    def __init__(self, prefix: str = "", *, name: str, rng: np.random.Generator | None = None,
                 **kwargs: Any):
        self._rng = rng
        super().__init__(prefix, name=name, **kwargs)
        self.z.readback.kind = "normal"  # grid plots hint x and y

    @property
    def motion_rng(self) -> np.random.Generator | None:
        return self._rng if self._rng is not None else self.find_up("motion_rng")

    def _default_backend(self) -> XYZStageSim:
        return XYZStageSim()

    def clear_fault(self) -> None:
        """Acknowledge a following error (the next move runs normally)."""
        self.backend.clear_fault()
        self.following_error.get()


# the EPICS variant lives with the other EPICS devices (re-exported here for old imports)
from .epics import EpicsXYZStage  # noqa: E402
