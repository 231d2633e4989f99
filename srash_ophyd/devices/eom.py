"""Electro-optic modulator on the Stokes beam.

Backend: :class:`simulators.parts.eom.EOMSim`. Components (data keys ``<name>_<component>``):

=========== ===================================== ====== ===== =====
component   what                                  kind   egu   range
=========== ===================================== ====== ===== =====
frequency   modulation frequency (the lock-in      config Hz    1e5-4e7, <= f_rep/2
            reference follows it in a microscope)
depth       modulation depth                      config       0-1
enabled     modulation on                         config
=========== ===================================== ====== ===== =====
"""

from __future__ import annotations

from ophyd import Component as Cpt

from simulators.parts.eom import EOMSim

from ._sim import SimBackedSignal, SimDevice

__all__ = ["EOM"]


def _set_frequency(dev: "EOM", value: float) -> None:
    dev.backend.set_frequency(float(value))
    sim = dev.find_up("sim")
    if sim is not None:  # the lock-in reference follows the EOM
        sim.lockin.reference_hz = dev.backend.frequency_hz


def _set_enabled(dev: "EOM", value: object) -> None:
    dev.backend.enabled = bool(value)


class EOM(SimDevice):
    """Square-wave intensity modulation of the Stokes beam (default 20 MHz = f_rep/4)."""

    default_labels = ("modulators",)

    _sim_part = "eom"

    frequency = Cpt(SimBackedSignal, getter=lambda d: float(d.backend.frequency_hz),
                    setter=_set_frequency,
                    limits=lambda d: (float(d.backend.config.min_hz),
                                      float(min(d.backend.config.max_hz,
                                                d.backend.rep_rate_hz / 2))),
                    egu="Hz", kind="config")
    depth = Cpt(SimBackedSignal, getter=lambda d: float(d.backend.depth),
                setter=lambda d, v: d.backend.set_depth(float(v)), limits=(0.0, 1.0),
                kind="config")
    enabled = Cpt(SimBackedSignal, getter=lambda d: bool(d.backend.enabled),
                  setter=_set_enabled, kind="config")

    def _default_backend(self) -> EOMSim:
        return EOMSim()
