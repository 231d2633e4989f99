"""ophyd labels (bluesky's ``%wa`` finds the stage and the lasers), the shell's pieces, and
the live mosaic preview on a headless (Agg) figure."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import plans
from srash_ophyd.cli import shell
from srash_ophyd.livepreview import MosaicPreview
from srash_ophyd.session import Session


def _session(mic, RE) -> Session:
    return Session(RE=RE, mic=mic, catalog=None, writer=None, plans=plans, data_dir=None,
                   tokens={}, specimen_md={})


def test_every_device_has_labels_and_wa_lists_stage_and_lasers(mic, RE):
    from bluesky.magics import get_labeled_devices
    from IPython.core.interactiveshell import InteractiveShell

    assert mic._ophyd_labels_ == {"detectors"}
    for part in ("pump", "stokes", "raman", "eom", "photodiode", "lockin", "pmt", "scanner",
                 "xyz", "detector"):
        assert getattr(mic, part)._ophyd_labels_, part
    found = get_labeled_devices(user_ns=_session(mic, RE).namespace())
    names = {label: [n for n, _ in v] for label, v in found.items()}
    assert {"pump", "stokes"} <= set(names["lasers"])
    assert "stage" in names["motors"] and "raman" in names["motors"]
    assert names["detectors"] == ["mic"]  # %ct counts the microscope once
    import matplotlib.pyplot as plt

    session = _session(mic, RE)
    ip = InteractiveShell.instance(user_ns=session.namespace())
    try:
        shell.setup_shell(ip, preview=True)  # what `srash shell` runs inside IPython
        assert isinstance(ip.user_ns["preview"], MosaicPreview)
        assert session.callbacks["preview"] is ip.user_ns["preview"] and session.tokens
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            ip.run_line_magic("wa", "motors lasers")
        text = out.getvalue()
    finally:
        InteractiveShell.clear_instance()
        plt.close("all")
    for word in ("srash_xyz_x", "srash_xyz_y", "srash_pump_wavelength", "srash_stokes",
                 "stage"):
        assert word in text


def test_banner_and_display_detection(monkeypatch):
    monkeypatch.setattr(shell.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not shell.has_display()
    monkeypatch.setenv("DISPLAY", ":0")
    assert shell.has_display()
    off = shell.banner(plots=False, preview=False, display=False)
    assert "plots off, no display" in off and "(off, no display)" in off
    assert "preview.enabled = False" in shell.banner(plots=True, preview=True)


def _mosaic(mic, rows, cols):
    return plans.mosaic([mic], mic.raman, mic.xyz.x, mic.xyz.y, rows=rows, cols=cols,
                        fov_um=20.0, overlap=0.25, center_um=(0.0, 0.0),
                        md={"sample_id": "S-1"})


def test_preview_draws_each_field_at_its_stage_position(mic, RE):
    fig = Figure()
    FigureCanvasAgg(fig)
    preview = MosaicPreview(fig, max_px=16)
    RE.subscribe(preview)
    fields = []
    RE.subscribe(lambda name, doc: fields.append(doc["data"]) if name == "event" else None)
    RE(_mosaic(mic, 1, 2))
    assert preview.n_fields == 2 and len(preview.ax.images) == 2
    p = mic.sim.scanner.fov_um / mic.sim.scanner.pixels
    xs = {round(d["srash_frame_x"], 6) for d in fields}
    for im in preview.ax.images:
        x0, x1, y1, y0 = im.get_extent()
        assert x1 - x0 == pytest.approx(32 * p) and y1 - y0 == pytest.approx(32 * p)
        assert any(abs((x0 + x1) / 2 - x) < 1e-6 for x in xs)  # at the recorded position
        rgb = im.get_array()
        assert rgb.shape == (16, 16, 3) and np.all((rgb >= 0) & (rgb <= 1))
    lo, hi = preview.ax.get_xlim()
    assert lo == pytest.approx(min(im.get_extent()[0] for im in preview.ax.images))
    assert hi == pytest.approx(max(im.get_extent()[1] for im in preview.ax.images))
    RE(_mosaic(mic, 1, 1))  # a new run starts a new picture
    assert preview.n_fields == 1 and len(preview.ax.images) == 1
    preview.enabled = False  # the user's switch
    RE(_mosaic(mic, 1, 1))
    assert preview.n_fields == 1 and len(preview.ax.images) == 1
