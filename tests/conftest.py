"""Shared fixtures: hypothesis profiles and small test specimens."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from simulators.specimens._raster import sphere_map
from simulators.specimens.base import Composition, Label, Specimen, Window

settings.register_profile(
    "default", deadline=None, max_examples=25,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile(
    "ci", deadline=None, max_examples=15, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "default")


class UniformSpecimen(Specimen):
    """Test specimen: the same composition everywhere (mass fractions given)."""

    kind = "uniform-test"

    def __init__(self, seed: int = 0, *, chi2: float = 0.0, **conc: float) -> None:
        super().__init__(seed)
        self.conc = conc
        self.chi2_value = chi2

    @property
    def extent_um(self):
        return (-1e5, 1e5, -1e5, 1e5)

    def render(self, window: Window) -> Composition:
        c = Composition.empty(window)
        for k, v in self.conc.items():
            c.concentrations[k][:] = v
        c.chi2[:] = self.chi2_value
        c.labels[:] = Label.STANDARD
        return c


class PointSpecimen(Specimen):
    """Test specimen: one small lipid (or SHG) sphere at the origin."""

    kind = "point-test"

    def __init__(self, diameter_um: float = 0.04, *, shg: bool = False) -> None:
        super().__init__(0)
        self.d = diameter_um
        self.shg = shg

    @property
    def extent_um(self):
        return (-5, 5, -5, 5)

    def render(self, window: Window) -> Composition:
        c = Composition.empty(window)
        m = sphere_map(window, np.array([0.0]), np.array([0.0]), np.array([self.d / 2]),
                       fwhm_z_um=0.74)
        # normalise to unit peak-free mass so the rendered map is a compact blob
        if self.shg:
            c.chi2[:] = m
        else:
            c.concentrations["lipid"][:] = m
        return c


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
