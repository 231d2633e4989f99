"""The forward model of the SRASH microscope (:mod:`simulators.instrument.simulator`)."""

from __future__ import annotations

from simulators.instrument.simulator import (FieldResult, FrameResult, ProcessedField,
                                             ResponseConfig, SRASHSimulator, build_simulator,
                                             merge_faults, process_field)

__all__ = ["FieldResult", "FrameResult", "ProcessedField", "ResponseConfig", "SRASHSimulator",
           "build_simulator", "merge_faults", "process_field"]
