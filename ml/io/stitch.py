"""Stitching a run's tiles into a mosaic and exporting a run as OME-TIFF files + a PNG.

Tiles come from :func:`ml.io.runs.run_tiles`.

**Placement.** Each tile's top-left corner is ``(frame_x - nx p / 2, frame_y - ny p / 2)``
with ``frame_x/_y`` the recorded field centre (stage um, the actual position including the
stage's repeatability error) and ``p`` the pixel size from the descriptor configuration
(``<name>_scanner_pixel_size``); offsets are rounded to whole pixels.

**Blending.** Linear feathering: each tile is weighted by a separable tent
``w(i, j) = min(i + 1, ny - i) * min(j + 1, nx - j)``, and the mosaic is
``sum_k w_k T_k / sum_k w_k`` (raw detector volts; uncovered pixels are NaN).

**Composite PNG.** R = SRS 2930 (protein), G = SRS 2850 (lipid), B = SHG. The detectors'
offsets are not in the run's configuration, so each channel's background is its 1st
percentile over the covered mosaic; it is subtracted and the channel scaled to its 99.7th
percentile (display only: the OME-TIFF keeps raw volts).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ml.io.frames import ReadFaults
from ml.io.runs import CHANNELS, ExportError, Tile, run_instrument, run_tiles

if TYPE_CHECKING:
    from ml.io.omexml import Acquisition

__all__ = ["composite_png", "export_run", "stitch", "tile_acquisition"]

log = logging.getLogger("srash.io.export")


def _tent(n: int) -> NDArray[np.float32]:
    i = np.arange(n, dtype=np.float32)
    return np.minimum(i + 1, n - i)


def stitch(tiles: list[Tile]) -> tuple[NDArray[np.float32], tuple[float, float], float]:
    """Feather-blended mosaic (3, H, W) float32 (NaN where no tile), its top-left corner
    (stage um) and pixel size; see module doc."""
    if not tiles:
        raise ExportError("no complete tile to stitch")
    p = tiles[0].pixel_um
    if any(abs(t.pixel_um - p) > 1e-9 * p for t in tiles):
        raise ExportError("tiles of different pixel sizes cannot be stitched")
    x0 = min(t.origin_um[0] for t in tiles)
    y0 = min(t.origin_um[1] for t in tiles)
    offs = [(int(round((t.origin_um[1] - y0) / p)), int(round((t.origin_um[0] - x0) / p)))
            for t in tiles]
    h = max(o[0] + t.data.shape[1] for o, t in zip(offs, tiles))
    w = max(o[1] + t.data.shape[2] for o, t in zip(offs, tiles))
    acc = np.zeros((3, h, w), np.float64)
    wsum = np.zeros((h, w), np.float64)
    for (r, c), t in zip(offs, tiles):
        ny, nx = t.data.shape[1:]
        wt = _tent(ny)[:, None] * _tent(nx)[None, :]
        acc[:, r:r + ny, c:c + nx] += t.data * wt
        wsum[r:r + ny, c:c + nx] += wt
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (acc / wsum).astype(np.float32)
    out[:, wsum == 0] = np.nan
    return out, (x0, y0), p


def composite_png(path: str | Path, mosaic: NDArray[np.float32]) -> Path:
    """R = SRS 2930, G = SRS 2850, B = SHG after per-channel percentile background (module
    doc); NaN (uncovered) pixels black."""
    from ml.common.plotting import save_rgb_png

    covered = np.isfinite(mosaic[0])
    chans = []
    for k in (1, 0, 2):
        img = mosaic[k]
        vals = img[covered]
        lo, hi = (np.percentile(vals, [1.0, 99.7]) if vals.size else (0.0, 1.0))
        x = np.clip((np.nan_to_num(img, nan=lo) - lo) / max(hi - lo, 1e-12), 0, 1)
        chans.append(np.where(covered, x, 0.0))
    return save_rgb_png(path, np.stack(chans, axis=-1).astype(np.float32))


def tile_acquisition(tile: Tile, instrument: dict[str, Any], acquired: float | None
                     ) -> Acquisition:
    """The OME description of a tile (or of a mosaic, given its first tile): channels
    :data:`CHANNELS`, the pump wavelength and physical shift of each (SHG: the lipid
    frame's), the run's instrument and start time (UNIX s)."""
    from ml.io.omexml import Acquisition

    def num(v: float) -> float | None:
        return None if not np.isfinite(v) else float(v)

    lp, pp = tile.pump_nm
    ls, ps = tile.shifts_cm1
    return Acquisition.build(CHANNELS, pump_nm=[num(lp), num(pp), num(lp)],
                             shifts_cm1=[num(ls), num(ps), None], instrument=instrument,
                             acquired=acquired)


def export_run(run, out_dir: str | Path, *, mosaic: bool = True,
               faults: ReadFaults | None = None) -> dict[str, Any]:
    """Write ``tile_NNN.ome.tif`` per complete tile, ``mosaic.ome.tif`` (a pyramid above
    :data:`~ml.io.ometiff.PYRAMID_MIN_PX` px) and ``mosaic.png`` into ``out_dir``; returns a
    summary (paths, tiles, skipped fields, mosaic shape and resolution levels, the run's
    ``state``). Faults: :func:`run_tiles`."""
    from ml.io.ometiff import write_mosaic, write_ome_tiff
    from ml.io.runstate import run_state

    start = run.metadata["start"]
    tiles, skipped = run_tiles(run, faults=faults)
    if not tiles:
        raise ExportError(f"run {start['uid']} has no complete SRASH tile to export"
                          + (f" ({len(skipped)} fields skipped: "
                             + "; ".join(sorted({s['why'] for s in skipped})) + ")"
                             if skipped else ""))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log.info("run %s: %d complete tiles, %d fields skipped -> %s", start["uid"], len(tiles),
             len(skipped), out)
    files = []
    prov = {"run_uid": start["uid"], "sample_id": start.get("sample_id"),
            "patient_id": start.get("patient_id")}
    instrument = run_instrument(run)
    when = start.get("time")
    for t in tiles:
        files.append(str(write_ome_tiff(
            out / f"tile_{t.index:03d}.ome.tif", t.data, channel_names=CHANNELS,
            pixel_size_um=t.pixel_um, position_um=t.origin_um,
            settings={**prov, "tile": t.index, "center_um": [t.x_um, t.y_um],
                      "events": list(t.events), "raman_shifts_cm1": list(t.shifts_cm1),
                      "units": "detector V (lock-in output / PMT)"},
            acquisition=tile_acquisition(t, instrument, when),
            name=f"run {start['uid'][:8]} tile {t.index}")))
    state = run_state(run)
    summary: dict[str, Any] = {"uid": start["uid"], "out": str(out), "tiles": files,
                               "skipped": skipped, "mosaic": None, "png": None,
                               "state": state.kind, "stop_reason": state.reason}
    if mosaic:
        m, origin, p = stitch(tiles)
        path, levels = write_mosaic(
            out / "mosaic.ome.tif", m, channel_names=CHANNELS, pixel_size_um=p,
            position_um=origin, settings={**prov, "tiles": len(tiles),
                                          "blend": "linear feathering (tent weights)",
                                          "units": "detector V; NaN = not imaged"},
            acquisition=tile_acquisition(tiles[0], instrument, when),
            name=f"run {start['uid'][:8]} mosaic")
        summary["mosaic"] = str(path)
        summary["mosaic_levels"] = levels
        log.info("mosaic %s: %s px, %d resolution levels", path, "x".join(map(str, m.shape)),
                 levels)
        summary["png"] = str(composite_png(out / "mosaic.png", m))
        summary["mosaic_shape"] = list(m.shape)
        summary["origin_um"] = list(origin)
        summary["pixel_size_um"] = p
    return summary
