"""A tiny, device-free Readable that labels every SRASH frame with its field and channel.

A SRASH field is acquired as one event per Raman shift (the detector gives one 2-channel
frame, SRS and SHG, per trigger). To rebuild each field's composite from the documents
alone, every event also carries the readings of a :class:`FieldMarker` (read in the same
``trigger_and_read`` bundle as the detectors):

================== ======== ===== ===================================================
data key           dtype    units meaning
================== ======== ===== ===================================================
``field_index``    integer        grid index of the field, ``row * cols + col`` (0 for a
                                  single field)
``field_row``      integer        grid row (image rows run along stage +y)
``field_col``      integer        grid column (image columns run along stage +x)
``field_x_um``     number   um    nominal stage x of the field centre (0 when the plan
                                  did not place the field; ``<det>_frame_x`` is actual)
``field_y_um``     number   um    nominal stage y of the field centre (likewise)
``shift_index``    integer        index of the Raman shift in the plan's ``shifts_cm1``
``shift_cm1``      number   cm^-1 nominal Raman shift of this frame
================== ======== ===== ===================================================

The marker holds plain Python state set by the plan *before* the frame's checkpoint, so a
frame replayed after a suspension reads the same labels. It implements the bluesky
``Readable`` protocol (``name``, ``parent``, ``read``, ``describe``) and the
``Configurable`` pair with empty configuration; it imports no device module.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["FIELD_KEYS", "FieldMarker", "plan_data_keys"]


def plan_data_keys(source: str, keys: dict[str, tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """Data keys of a plan-side readable: ``keys`` maps name -> (dtype, units), dtype one of
    ``integer`` / ``number`` / ``string``; units ``""`` for none and ``"json"`` for a string
    holding JSON (not a unit: left out)."""
    out = {}
    for key, (dtype, units) in keys.items():
        dk: dict[str, Any] = {"source": source, "dtype": dtype, "shape": []}
        if dtype != "string":
            dk["dtype_numpy"] = "<i8" if dtype == "integer" else "<f8"
        if units and units != "json":
            dk["units"] = units
        out[key] = dk
    return out

#: data key -> (dtype, units) of the marker's readings
FIELD_KEYS: dict[str, tuple[str, str]] = {
    "field_index": ("integer", ""),
    "field_row": ("integer", ""),
    "field_col": ("integer", ""),
    "field_x_um": ("number", "um"),
    "field_y_um": ("number", "um"),
    "shift_index": ("integer", ""),
    "shift_cm1": ("number", "cm^-1"),
}


class FieldMarker:
    """Field / channel labels read with every frame (see the module docstring).

    Parameters
    ----------
    name : str
        Object name in the descriptor's ``object_keys`` (the data keys are fixed).
    """

    parent = None

    def __init__(self, name: str = "field") -> None:
        self._name = str(name)
        self.field_index = 0
        self.field_row = 0
        self.field_col = 0
        self.field_x_um = 0.0
        self.field_y_um = 0.0
        self.shift_index = 0
        self.shift_cm1 = 0.0

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"FieldMarker(name={self._name!r})"

    def set_field(self, index: int, *, row: int = 0, col: int = 0,
                  x_um: float = 0.0, y_um: float = 0.0) -> None:
        """Label the frames that follow as field ``index`` at grid (``row``, ``col``) and
        nominal stage position (``x_um``, ``y_um``) in micrometres."""
        self.field_index = int(index)
        self.field_row = int(row)
        self.field_col = int(col)
        self.field_x_um = float(x_um)
        self.field_y_um = float(y_um)

    def set_shift(self, index: int, shift_cm1: float) -> None:
        """Label the next frame as Raman shift number ``index`` (nominal ``shift_cm1``)."""
        self.shift_index = int(index)
        self.shift_cm1 = float(shift_cm1)

    # ------------------------------------------------------------------ bluesky protocols
    def read(self) -> dict[str, dict[str, Any]]:
        ts = time.time()
        return {key: {"value": getattr(self, key), "timestamp": ts} for key in FIELD_KEYS}

    def describe(self) -> dict[str, dict[str, Any]]:
        return plan_data_keys(f"plan:{self._name}", FIELD_KEYS)

    def read_configuration(self) -> dict[str, dict[str, Any]]:
        return {}

    def describe_configuration(self) -> dict[str, dict[str, Any]]:
        return {}
