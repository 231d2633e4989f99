"""Rebuild SRASH tiles from a mosaic run in the catalog (stitching: :mod:`ml.io.stitch`).

**Tiles from documents.** Events of the ``primary`` stream are grouped into fields: by the
plan's per-event field index when the stream has one (a data key ending in ``field_index``
or ``tile_index``), else by consecutive events at the same field centre
(``<name>_frame_x/_y`` within half a pixel). In each field the event whose
``<name>_frame_raman_shift`` is nearest 2850 cm^-1 gives ``SRS_2850`` (image channel 0) and
``SHG`` (channel 1), the one nearest 2930 gives ``SRS_2930``; a field missing either
(an interrupted tile) is skipped and reported.

**Faults** (:mod:`ml.io.frames`): a run without a stop document (a killed scan) is
an :class:`~ml.io.runstate.IncompleteRunError`; a field whose frame file cannot be read
is skipped with a warning naming the file (or, ``strict``, stops with a
:class:`~ml.io.frames.FrameError`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ml.io.frames import FrameError, FrameReader, ReadFaults
from ml.io.runstate import RunError
from plans.contract import COMPOSITE_CHANNELS, LIPID_CM1, PAIR_TOLERANCE_CM1, PROTEIN_CM1

__all__ = ["CHANNELS", "ExportError", "Tile", "find_image_key", "pick_frames",
           "pixel_um_of", "run_instrument", "run_tiles", "tile_data"]

CHANNELS = COMPOSITE_CHANNELS
TOLERANCE_CM1 = PAIR_TOLERANCE_CM1


class ExportError(RunError):
    """The run cannot be exported (no image stream, no complete tile...)."""


@dataclasses.dataclass
class Tile:
    """One SRASH field rebuilt from the documents: ``data`` (3, ny, nx) float32 in
    :data:`CHANNELS` order, centre ``x_um``/``y_um`` (stage), ``pixel_um``, the event
    indices it came from and the physical shifts."""

    index: int
    x_um: float
    y_um: float
    pixel_um: float
    data: NDArray[np.float32]
    events: tuple[int, int]
    shifts_cm1: tuple[float, float]
    pump_mw: tuple[float, float] = (float("nan"), float("nan"))
    stokes_mw: tuple[float, float] = (float("nan"), float("nan"))
    pump_nm: tuple[float, float] = (float("nan"), float("nan"))

    @property
    def origin_um(self) -> tuple[float, float]:
        ny, nx = self.data.shape[1:]
        return self.x_um - nx * self.pixel_um / 2, self.y_um - ny * self.pixel_um / 2


def find_image_key(stream) -> str:
    """The external (channel, y, x) image key of an event stream."""
    keys = stream.metadata.get("data_keys", {})
    for k, v in keys.items():
        if v.get("external") and len(v.get("shape") or ()) == 3:
            return k
    raise ExportError(f"stream has no external (channel, y, x) image among {sorted(keys)}")


NO_PAIR = "no frame at both ~2850 and ~2930 cm^-1"


def pick_frames(shifts_cm1) -> tuple[int, int] | None:
    """Positions (in ``shifts_cm1``) of a field's lipid (~2850) and protein (~2930) frames:
    the frames nearest each, within :data:`TOLERANCE_CM1`; None when the field lacks one
    (an interrupted tile). The one rule shared by export, training and the live callback."""
    s = np.asarray(shifts_cm1, np.float64)
    d_l, d_p = np.abs(s - LIPID_CM1), np.abs(s - PROTEIN_CM1)
    il, ip = int(np.argmin(d_l)), int(np.argmin(d_p))
    if il == ip or d_l[il] > TOLERANCE_CM1 or d_p[ip] > TOLERANCE_CM1:
        return None
    return il, ip


def tile_data(lipid_frame: NDArray, protein_frame: NDArray) -> NDArray[np.float32]:
    """(3, ny, nx) in :data:`CHANNELS` order from the two (SRS, SHG) frames of a field:
    SRS of the ~2850 frame, SRS of the ~2930 frame, SHG of the ~2850 frame."""
    a, b = np.asarray(lipid_frame), np.asarray(protein_frame)
    return np.stack([a[0], b[0], a[1]]).astype(np.float32, copy=False)


def _column(stream, key: str) -> NDArray:
    return np.asarray(stream[key].read())


def run_instrument(run, stream_name: str = "primary") -> dict[str, Any]:
    """The instrument description the detector recorded with the run's image data key
    (``instrument``: Stokes wavelength, pump range, objective; :mod:`ml.io.omexml`), {} for
    runs recorded before it was."""
    if stream_name not in run:
        return {}
    stream = run[stream_name]
    try:
        key = find_image_key(stream)
    except ExportError:
        return {}
    return dict(stream.metadata["data_keys"][key].get("instrument") or {})


def pixel_um_of(stream, base: str) -> float | None:
    """Scanner pixel size (um) from a stream's configuration, or None."""
    cfg = stream.metadata.get("configuration", {})
    for obj in cfg.values():
        data = obj.get("data", {})
        for key in (f"{base}_scanner_pixel_size", "scanner_pixel_size"):
            if key in data:
                return float(data[key])
    return None


def _groups(stream, base: str, n: int, pixel_um: float) -> list[tuple[Any, list[int]]]:
    """``(field, event indices)`` per field: ``field`` is the plan's field index when the
    stream has one, else the field's position in acquisition order."""
    keys = stream.metadata.get("data_keys", {})
    marker = next((k for k in keys if k.endswith(("field_index", "tile_index"))), None)
    if marker is not None:
        idx = _column(stream, marker)
        order: dict[Any, list[int]] = {}
        for i, v in enumerate(idx[:n].tolist()):
            order.setdefault(v, []).append(i)
        return list(order.items())
    xs = _column(stream, f"{base}_frame_x")
    ys = _column(stream, f"{base}_frame_y")
    groups: list[list[int]] = []
    for i in range(n):
        if groups and abs(xs[i] - xs[groups[-1][0]]) < pixel_um / 2 and \
                abs(ys[i] - ys[groups[-1][0]]) < pixel_um / 2:
            groups[-1].append(i)
        else:
            groups.append([i])
    return list(enumerate(groups))


def run_tiles(run, *, stream_name: str = "primary", load: bool = True,
              faults: ReadFaults | None = None) -> tuple[list[Tile], list[dict[str, Any]]]:
    """(complete tiles, skipped fields) of a run. ``load=False`` leaves ``data`` empty
    (geometry only). Each tile reads two files through the tiled client, one request each.

    Raises :class:`~ml.io.runstate.IncompleteRunError` for a run without a stop
    document. A field with an unreadable frame file is reported through ``faults`` (default:
    a warning on stderr) and skipped (its entry in the skipped list has the ``path``), or,
    when ``faults.strict``, raises :class:`~ml.io.frames.FrameError`."""
    from ml.io.runstate import require_readable

    require_readable(run)
    faults = faults if faults is not None else ReadFaults()
    if stream_name not in run:
        raise ExportError(f"run {run.metadata['start']['uid']} has no {stream_name!r} stream "
                          "(nothing acquired?)")
    stream = run[stream_name]
    key = find_image_key(stream)
    base = key[: -len("_image")] if key.endswith("_image") else key
    shift = _column(stream, f"{base}_frame_raman_shift")
    n = len(shift)
    xs = _column(stream, f"{base}_frame_x")
    ys = _column(stream, f"{base}_frame_y")
    pixel = pixel_um_of(stream, base)
    shape = stream.metadata["data_keys"][key]["shape"]
    if pixel is None:
        from ml.io.ometiff import read_ome_tiff  # fall back on the file's own pixel size

        src = stream[key].data_sources()[0].assets[0].data_uri
        pixel = read_ome_tiff(src.removeprefix("file://").split("?")[0]).pixel_size_um
    keys = stream.metadata.get("data_keys", {})
    read = FrameReader(stream[key], run.metadata["start"].get("uid"), shape,
                       keys[key].get("dtype_numpy"))
    pump = _column(stream, f"{base}_frame_pump_mw") if f"{base}_frame_pump_mw" in keys \
        else np.full(n, np.nan)
    stokes = _column(stream, f"{base}_frame_stokes_mw") if f"{base}_frame_stokes_mw" in keys \
        else np.full(n, np.nan)
    pump_nm = _column(stream, f"{base}_frame_pump_nm") if f"{base}_frame_pump_nm" in keys \
        else np.full(n, np.nan)
    tiles, skipped = [], []
    for field, g in _groups(stream, base, n, pixel):
        pair = pick_frames(shift[g])
        if pair is None:
            skipped.append({"field": field, "events": g, "x_um": float(xs[g[0]]),
                            "y_um": float(ys[g[0]]), "why": NO_PAIR})
            continue
        il, ip = g[pair[0]], g[pair[1]]
        if load:
            frames, errors = [], []
            for i in (il, ip):  # both: every bad file is reported
                try:
                    frames.append(read(i, field))
                except FrameError as err:
                    faults.frame(err)
                    errors.append(err)
            if errors:
                skipped.append({"field": field, "events": g, "x_um": float(xs[g[0]]),
                                "y_um": float(ys[g[0]]), "why": errors[0].why,
                                "paths": [e.path for e in errors]})
                continue
            data = tile_data(*frames)
        else:
            data = np.empty((3, shape[1], shape[2]), np.float32)
        tiles.append(Tile(index=len(tiles), x_um=float(xs[il]), y_um=float(ys[il]),
                          pixel_um=float(pixel), data=data, events=(il, ip),
                          shifts_cm1=(float(shift[il]), float(shift[ip])),
                          pump_mw=(float(pump[il]), float(pump[ip])),
                          stokes_mw=(float(stokes[il]), float(stokes[ip])),
                          pump_nm=(float(pump_nm[il]), float(pump_nm[ip]))))
    return tiles, skipped
