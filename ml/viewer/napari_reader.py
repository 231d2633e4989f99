"""napari reader of SRASH OME-TIFF files: frames, simulated fields, stacks, tiles, mosaics.

npe2 calls :func:`napari_get_reader` with a path; for a file written by SRASH (its OME-XML
carries the ``srash/settings`` annotation, :mod:`ml.io.omexml`) it returns
:func:`read_srash`, which returns napari *layer data tuples* ``(data, kwargs, layer_type)``:

- a field, frame, tile or mosaic: one ``image`` tuple with ``channel_axis=0``: one layer
  per channel, named as the channel (``SRS_2850``, ``SRS_2930``, ``SHG``...; napari
  numbers repeated names when several files are open), colormaps as the
  paper's composite (:data:`plans.contract.CHANNEL_COLORMAPS`: SRS ~2930 red, SRS ~2850
  green, SHG blue; an SRS channel within the pairing tolerance of a band gets its colour,
  others gray), additive blending, contrast limits at the 1st / 99.7th percentile of the
  imaged (finite) pixels;
- a hyperspectral stack (many SRS channels, no SHG): one ``image`` layer whose first axis
  is the Raman shift, its slider in cm^-1 when the bands are evenly spaced;
- a truth label map (channel ``labels``): one ``labels`` layer.

Every layer has ``scale`` = the pixel size in micrometres and ``translate`` = the stage
position of the image's top-left corner (um), so tiles of a mosaic open where they were
acquired; a pyramid (exported mosaics) opens as a multiscale image (all levels read). The
``metadata`` hold the file's settings, the channel names and the Raman shift of each
channel. Nothing here imports napari (tests call it without napari).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
from numpy.typing import NDArray

from plans.contract import (
    CHANNEL_COLORMAPS,
    LIPID_CM1,
    PAIR_TOLERANCE_CM1,
    PROTEIN_CM1,
    SHG_CHANNEL,
    srs_channel,
    srs_channel_shift,
)

__all__ = ["LayerData", "channel_colormap", "napari_get_reader", "read_srash"]

#: napari's layer data tuple: (data, layer keyword arguments, layer type)
LayerData = tuple[Any, dict[str, Any], str]
_SUFFIXES = (".ome.tif", ".ome.tiff")


def napari_get_reader(path: str | os.PathLike | list) -> Callable[[Any], list[LayerData]] | None:
    """:func:`read_srash` for one SRASH OME-TIFF path (or a list of them), else None (npe2
    then offers the file to other readers)."""
    paths = path if isinstance(path, (list, tuple)) else [path]
    if not paths or not all(_is_srash(p) for p in paths):
        return None
    return read_srash


def read_srash(path: str | os.PathLike | list) -> list[LayerData]:
    """The layer data tuples of one or more SRASH OME-TIFF files (module doc)."""
    paths = path if isinstance(path, (list, tuple)) else [path]
    out: list[LayerData] = []
    for p in paths:
        out.extend(_read_one(Path(p)))
    return out


def channel_colormap(name: str) -> str:
    """napari colormap of a channel: the composite's colour of its band (SRS within
    :data:`~plans.contract.PAIR_TOLERANCE_CM1` of 2850 / 2930 cm^-1: green / red; SHG:
    blue), gray otherwise."""
    if name == SHG_CHANNEL:
        return CHANNEL_COLORMAPS[SHG_CHANNEL]
    shift = srs_channel_shift(name)
    if shift is not None:
        for band in (LIPID_CM1, PROTEIN_CM1):
            if abs(shift - band) <= PAIR_TOLERANCE_CM1:
                return CHANNEL_COLORMAPS.get(srs_channel(band), "gray")
    return "gray"


def _is_srash(path: Any) -> bool:
    if not isinstance(path, (str, os.PathLike)):
        return False
    p = Path(path)
    if not p.name.lower().endswith(_SUFFIXES) or not p.is_file():
        return False
    import tifffile

    from ml.io.omexml import SETTINGS_NAMESPACE

    try:
        with tifffile.TiffFile(p) as tif:
            xml = tif.ome_metadata or ""
    except (tifffile.TiffFileError, ValueError, OSError):
        return False
    return SETTINGS_NAMESPACE in xml


def _read_one(path: Path) -> list[LayerData]:
    import tifffile

    from ml.io.ometiff import read_ome_tiff

    img = read_ome_tiff(path)
    with tifffile.TiffFile(path) as tif:
        levels = [np.asarray(lv.asarray()) for lv in tif.series[0].levels]
    levels = [lv[None] if lv.ndim == 2 else lv for lv in levels]
    p = float(img.pixel_size_um)
    x0, y0 = img.position_um if img.position_um is not None else (0.0, 0.0)
    names = list(img.channel_names)
    shifts = [srs_channel_shift(n) for n in names]
    meta = {"path": str(path), "settings": img.settings, "channel_names": names,
            "raman_shift_cm1": shifts, "pixel_size_um": p, "position_um": [x0, y0],
            "units": "um"}
    data: Any = levels if len(levels) > 1 else levels[0]
    base = path.name
    for suffix in _SUFFIXES:
        if base.lower().endswith(suffix):
            base = base[: -len(suffix)]
    if names == ["labels"]:
        lab = [lv[0] for lv in levels] if len(levels) > 1 else levels[0][0]
        return [(lab, {"name": f"{base} labels", "scale": (p, p), "translate": (y0, x0),
                       "metadata": meta}, "labels")]
    if _is_stack(names, shifts):
        bands = np.asarray(shifts, np.float64)
        steps = np.diff(bands)
        even = bands.size > 1 and np.allclose(steps, steps[0], rtol=1e-3) and steps[0] > 0
        z_scale, z0 = (float(steps[0]), float(bands[0])) if even else (1.0, 0.0)
        lo, hi = _limits(levels[-1])
        return [(data, {"name": f"{base} SRS {bands.min():g}-{bands.max():g} cm^-1",
                        "scale": (z_scale, p, p), "translate": (z0, y0, x0),
                        "colormap": "gray", "contrast_limits": (lo, hi),
                        "metadata": {**meta, "axes": ["raman_shift_cm1" if even else "band",
                                                      "y", "x"]}}, "image")]
    limits = [_limits(levels[-1][k:k + 1]) for k in range(len(names))]
    kwargs = {"channel_axis": 0, "name": names,
              "scale": (p, p), "translate": (y0, x0),
              "colormap": [channel_colormap(n) for n in names],
              "blending": ["additive"] * len(names), "contrast_limits": limits,
              "multiscale": len(levels) > 1, "metadata": meta}
    return [(data, kwargs, "image")]


def _is_stack(names: list[str], shifts: list[float | None]) -> bool:
    """A hyperspectral stack: more than two channels, all SRS."""
    return len(names) > 2 and all(s is not None for s in shifts)


def _limits(arr: NDArray) -> tuple[float, float]:
    vals = np.asarray(arr, np.float64)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(vals, [1.0, 99.7]))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)
