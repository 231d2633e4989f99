"""The napari reader as napari finds it: the npe2 manifest validates, declares the reader
for OME-TIFF files, and npe2 reads a SRASH file through it (no napari, no display)."""

from __future__ import annotations

import tomllib
import warnings
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from ml.io.ometiff import write_ome_tiff

with warnings.catch_warnings():  # npe2's pydantic models warn at import (deprecations)
    warnings.simplefilter("ignore")
    npe2 = pytest.importorskip("npe2", reason="pip install 'srash[test]' (npe2)")

MANIFEST = files("ml.viewer") / "napari.yaml"


@pytest.fixture
def manifest():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return npe2.PluginManifest.from_file(str(MANIFEST))


@pytest.fixture
def plugin_manager(manifest):
    pm = npe2.PluginManager.instance()
    if "srash" in pm._manifests:  # an installed srash already registered it
        pm.unregister("srash")
    pm.register(manifest)
    yield pm
    pm.unregister("srash")


def test_the_package_ships_the_manifest_under_its_entry_point():
    meta = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["napari.manifest"] == {
        "srash": "ml.viewer:napari.yaml"}
    assert "viewer/napari.yaml" in meta["tool"]["setuptools"]["package-data"]["ml"]
    assert "napari" in meta["project"]["optional-dependencies"]
    assert MANIFEST.is_file()


def test_manifest_validates_and_its_command_imports(manifest):
    from ml.viewer.napari_reader import napari_get_reader

    assert manifest.name == "srash"
    manifest.validate_imports()  # every python_name resolves
    (cmd,) = manifest.contributions.commands
    (reader,) = manifest.contributions.readers
    assert reader.command == cmd.id and "*.ome.tif" in reader.filename_patterns
    assert cmd.python_name == "ml.viewer.napari_reader:napari_get_reader"
    assert napari_get_reader is not None


def test_npe2_discovers_and_reads_through_the_reader(plugin_manager, tmp_path):
    path = tmp_path / "field.ome.tif"
    data = np.arange(3 * 8 * 10, dtype=np.float32).reshape(3, 8, 10)
    write_ome_tiff(path, data, channel_names=["SRS_2850", "SRS_2930", "SHG"],
                   pixel_size_um=0.25, position_um=(5.0, 7.0), settings={"kind": "fov"})
    readers = [r.command for r in plugin_manager.iter_compatible_readers([str(path)])]
    assert "srash.get_reader" in readers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        layers = npe2.read([str(path)], plugin_name="srash", stack=False)
    ((arr, kw, kind),) = layers
    assert kind == "image" and kw["channel_axis"] == 0
    assert kw["name"] == ["SRS_2850", "SRS_2930", "SHG"]
    assert kw["scale"] == pytest.approx((0.25, 0.25))
    assert kw["translate"] == pytest.approx((7.0, 5.0))
    np.testing.assert_array_equal(arr, data)
