"""Fixtures for the device tests: small, fast simulated microscopes and a document sink."""

from __future__ import annotations

import pytest
from bluesky import RunEngine
from event_model import DocumentNames, schema_validators

from srash_ophyd.devices.factory import make_microscope


@pytest.fixture
def mic(tmp_path):
    """A 32x32-pixel microscope on the uniform lipid reference (instant time)."""
    return make_microscope("reference", seed=0, noise_seed=7, data_dir=tmp_path / "frames",
                           pixels=32, fov_um=20.0, averages=1)


@pytest.fixture
def beads_mic(tmp_path):
    return make_microscope("beads", seed=1, noise_seed=3, data_dir=tmp_path / "beads",
                           pixels=48, fov_um=30.0, averages=1)


class DocSink:
    """Collects (name, doc) and validates each against event-model's schemas."""

    def __init__(self) -> None:
        self.docs: list[tuple[str, dict]] = []

    def __call__(self, name: str, doc: dict) -> None:
        schema_validators[DocumentNames[name]].validate(doc)
        self.docs.append((name, doc))

    def of(self, name: str) -> list[dict]:
        return [d for n, d in self.docs if n == name]


@pytest.fixture
def RE():
    return RunEngine({})


@pytest.fixture
def sink(RE):
    s = DocSink()
    RE.subscribe(s)
    return s
