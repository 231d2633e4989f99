"""Fixtures for the plan tests: small simulated microscopes, a validating document sink."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from bluesky import RunEngine
from event_model import DocumentNames, schema_validators

from ml.io.ometiff import read_ome_tiff
from srash_ophyd.devices.factory import make_microscope


class DocSink:
    """Collects (name, doc), validating each against event-model's schemas."""

    def __init__(self) -> None:
        self.docs: list[tuple[str, dict]] = []

    def __call__(self, name: str, doc: dict) -> None:
        schema_validators[DocumentNames[name]].validate(doc)
        self.docs.append((name, doc))

    def of(self, name: str, run: str | None = None) -> list[dict]:
        out = [d for n, d in self.docs if n == name]
        if run is None:
            return out
        return [d for d in out if _run_of(self, name, d) == run]

    def clear(self) -> None:
        self.docs.clear()

    def frames(self, run: str | None = None) -> list[tuple[dict, np.ndarray]]:
        """(event, image (channel, y, x)) of every primary event, rebuilt from the
        documents (descriptor -> StreamDatum -> StreamResource) and the files only."""
        descs = {d["uid"]: d for d in self.of("descriptor")}
        res = {d["uid"]: d for d in self.of("stream_resource")}
        datums = {}
        for sd in self.of("stream_datum"):
            for seq in range(sd["seq_nums"]["start"], sd["seq_nums"]["stop"]):
                datums[(sd["descriptor"], seq)] = sd
        out = []
        for ev in self.of("event"):
            desc = descs[ev["descriptor"]]
            if desc["name"] != "primary" or (run is not None and desc["run_start"] != run):
                continue
            sd = datums[(ev["descriptor"], ev["seq_num"])]
            sr = res[sd["stream_resource"]]
            i = sd["indices"]["start"]
            path = Path(urlparse(sr["uri"]).path) / sr["parameters"]["template"].format(i)
            out.append((ev, read_ome_tiff(path).data))
        return out


def _run_of(sink: DocSink, name: str, doc: dict) -> str | None:
    if name == "start":
        return doc["uid"]
    if name in ("stop", "descriptor"):
        return doc["run_start"]
    if name == "event":
        descs = {d["uid"]: d for d in sink.of("descriptor")}
        return descs[doc["descriptor"]]["run_start"]
    return None


@pytest.fixture
def RE():
    re = RunEngine({})
    yield re
    re.clear_suspenders()


@pytest.fixture
def sink(RE):
    s = DocSink()
    RE.subscribe(s)
    return s


@pytest.fixture
def mic(tmp_path):
    """48x48-pixel, 20 um field on the testis section (instant time)."""
    return make_microscope("testis", seed=0, noise_seed=5, data_dir=tmp_path / "frames",
                           pixels=48, fov_um=20.0, averages=1)


@pytest.fixture
def ref_mic(tmp_path):
    """The uniform lipid reference, 32x32 pixels."""
    return make_microscope("reference", seed=0, noise_seed=2, data_dir=tmp_path / "ref",
                           pixels=32, fov_um=20.0, averages=1)
