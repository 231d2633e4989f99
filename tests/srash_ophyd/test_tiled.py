"""The frames through bluesky-tiled-plugins' TiledWriter into an embedded SQLite catalog."""

from __future__ import annotations

import bluesky.plans as bp
import numpy as np
import pytest

from ml.io.ometiff import read_ome_tiff
from srash_ophyd.devices.factory import make_microscope


@pytest.mark.slow
# third-party: tiled's in-process Context uses starlette's TestClient over httpx, which
# starlette now deprecates (nothing in this project can change that)
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient` is deprecated")
def test_tiled_writer_round_trip(RE, tmp_path):
    from bluesky_tiled_plugins import TiledWriter
    from bluesky_tiled_plugins.routers.validator import router as validator
    from tiled.catalog import from_uri
    from tiled.client import Context, from_context
    from tiled.server.app import build_app

    frames = tmp_path / "frames"
    mic = make_microscope("beads", seed=2, data_dir=frames, pixels=24, fov_um=20.0, averages=1)
    root = tmp_path / "catalog"
    (root / "data").mkdir(parents=True)
    catalog = from_uri(f"sqlite:///{root}/catalog.db", writable_storage=[
        str(root / "data"), f"sqlite:///{root}/tables.sqlite"], readable_storage=[str(frames)],
        init_if_not_exists=True, specs=[{"name": "CatalogOfBlueskyRuns", "version": "3.0"}])
    with Context.from_app(build_app(catalog, include_routers=[validator])) as ctx:
        client = from_context(ctx)
        paths = []
        RE.subscribe(TiledWriter(client))
        (uid,) = RE(bp.list_scan([mic], mic.raman, [2850, 2930]),
                    lambda n, d: paths.append(mic.detector.last_path) if n == "event" else None)
        run = client[uid]
        run.validate(fix_errors=False, raise_on_error=True)
        arr = run["primary"]["srash_image"].read()
        assert arr.shape == (2, 2, 24, 24) and arr.dtype == np.float32
        for k, p in enumerate(paths):
            np.testing.assert_array_equal(arr[k], read_ome_tiff(p).data)
