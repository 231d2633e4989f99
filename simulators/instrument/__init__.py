"""The forward model of the SRASH microscope as stages: specimen window -> concentration
maps (:mod:`.render`) -> SRS modulation / SHG photons after the PSF (:mod:`.contrast`) ->
raster + lock-in + PMT (:mod:`.detection`) -> frame (:class:`SRASHSimulator`).

:meth:`SRASHSimulator.frame` is the one acquisition primitive: the detector of a scan,
``srash simulate``, fields and hyperspectral stacks all raster through it.
"""

from __future__ import annotations

from simulators.instrument.acquisition import AcquisitionConfig, AcquisitionSession
from simulators.instrument.response import ResponseConfig
from simulators.instrument.results import FieldResult, FrameResult, merge_faults
from simulators.instrument.simulator import SRASHSimulator, build_simulator, noise_generators

__all__ = ["AcquisitionConfig", "AcquisitionSession", "FieldResult", "FrameResult",
           "ResponseConfig", "SRASHSimulator", "build_simulator", "merge_faults",
           "noise_generators"]
