"""A screenshot of a SRASH file opened in napari through the package's reader (not in CI).

Needs napari with a Qt binding and a display; on a headless machine a virtual one::

    python3 -m venv /tmp/napvenv && /tmp/napvenv/bin/pip install "napari[pyqt5]"
    apt-get install xvfb libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 \\
        libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-cursor0 libgl1
    .venv/bin/srash simulate fov --phenotype NOA-SPT --seed 7 --pixels 600 --fov-um 180 \\
        --processed --out /tmp/field.ome.tif
    PYTHONPATH=$PWD xvfb-run -a -s "-screen 0 1400x1000x24" /tmp/napvenv/bin/python \\
        -m studies.napari_screenshot /tmp/field.ome.tif docs/napari-screenshot.png

The manifest (``ml/viewer/napari.yaml``) is registered with npe2 directly, so the package
need not be installed in napari's environment; ``viewer.open(..., plugin="srash")`` then
goes through napari's own plugin machinery, as a drag-and-drop would.
"""

from __future__ import annotations

import argparse
from pathlib import Path

MANIFEST = Path(__file__).resolve().parents[1] / "ml" / "viewer" / "napari.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", help="a SRASH OME-TIFF (field, frame, stack or mosaic)")
    ap.add_argument("png", help="where the screenshot goes")
    args = ap.parse_args()
    import napari  # a viewer's environment, not the project's
    from npe2 import PluginManager, PluginManifest

    PluginManager.instance().register(PluginManifest.from_file(MANIFEST))
    viewer = napari.Viewer(show=False)
    viewer.open(args.file, plugin="srash")
    viewer.window.resize(1200, 900)
    viewer.scale_bar.visible = True
    for layer in viewer.layers:
        print(layer.name, "scale (um):", tuple(layer.scale), "colormap:", layer.colormap.name)
    viewer.reset_view()
    viewer.screenshot(args.png, canvas_only=False, flash=False)
    print("wrote", args.png)


if __name__ == "__main__":
    main()
