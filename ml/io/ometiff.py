"""OME-TIFF files of SRASH frames, stacks and mosaics: channel names, pixel size, settings.

Written so that Fiji (Bio-Formats), napari (the ``srash[napari]`` reader) and tifffile show
the right scale and names: OME-XML (:mod:`ml.io.omexml`: acquisition date, instrument,
per-channel wavelengths, ``PhysicalSizeX/Y`` in um, plane positions in stage um) plus TIFF
resolution tags; the full acquisition settings are a JSON string in an OME
``MapAnnotation`` (namespace :data:`SETTINGS_NAMESPACE`). Large images (mosaics) are
pyramids: 2x2-mean levels in SubIFDs, 512 px tiles, zlib (lossless). Files are written
atomically (temp file + rename), so a crash never leaves half a file under the final name.
The files are described for users in docs/files.md.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tifffile
from numpy.typing import NDArray

from ml.common.errors import MLError
from ml.common.fileio import create_temp_beside
from ml.io.omexml import SETTINGS_NAMESPACE, Acquisition, ome_xml

__all__ = ["PYRAMID_MIN_PX", "SETTINGS_NAMESPACE", "TILE_PX", "OMEImage", "OMETiffError",
           "downsample2", "level_shapes", "pyramid_levels", "read_ome_tiff", "write_mosaic",
           "write_ome_tiff"]

log = logging.getLogger("srash.io")

#: images larger than this (px, either side) are written as pyramids by ``pyramid=None``
PYRAMID_MIN_PX = 2048
#: tile side of pyramidal files (px)
TILE_PX = 512


class OMETiffError(MLError):
    """A file is not a readable SRASH OME-TIFF (malformed, missing metadata...)."""


@dataclasses.dataclass
class OMEImage:
    """An OME-TIFF read back: data (C, Y, X) at full resolution, channel names, pixel size
    (um), settings, the number of resolution levels and the stage position (um) of the
    top-left corner (None when not recorded)."""

    data: NDArray
    channel_names: list[str]
    pixel_size_um: float
    settings: dict[str, Any]
    levels: int = 1
    position_um: tuple[float, float] | None = None


def write_ome_tiff(path: str | os.PathLike, data: NDArray, *, channel_names: Sequence[str],
                   pixel_size_um: float, position_um: tuple[float, float] | None = None,
                   settings: dict[str, Any] | None = None, sync: bool = False,
                   acquisition: Acquisition | None = None, pyramid: bool | None = False,
                   name: str | None = None) -> Path:
    """Write a (C, Y, X) array (or (Y, X)) as OME-TIFF; returns the path.

    ``position_um``: stage (x, y) of the field's top-left corner, stored per plane.
    ``acquisition``: date, instrument and per-channel wavelengths (:mod:`ml.io.omexml`);
    default: the channel names only, acquired now.
    ``pyramid``: True writes a multi-resolution file (:func:`pyramid_levels`: 2x2-mean
    levels in SubIFDs, 512 px tiles, zlib); None decides by size (above
    :data:`PYRAMID_MIN_PX` px); False writes one flat uncompressed plane per channel.
    ``sync``: force the file and its directory entry to disk before returning (a frame
    survives a power loss once this returns). The file gets the permissions the umask gives
    (``0o666 & ~umask``), as a plain ``open()`` would.
    """
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise OMETiffError(f"expected (C, Y, X) data, got shape {arr.shape}")
    if len(channel_names) != arr.shape[0]:
        raise OMETiffError(f"{len(channel_names)} channel names for {arr.shape[0]} channels")
    if not pixel_size_um > 0:
        raise OMETiffError(f"pixel size must be > 0 um, got {pixel_size_um}")
    if acquisition is None:
        acquisition = Acquisition.build([str(n) for n in channel_names],
                                        acquired=_dt.datetime.now(_dt.timezone.utc))
    elif [ch.name for ch in acquisition.channels] != [str(n) for n in channel_names]:
        raise OMETiffError(f"channel names {list(channel_names)} differ from the "
                           f"acquisition's {[ch.name for ch in acquisition.channels]}")
    if pyramid is None:
        pyramid = max(arr.shape[1:]) > PYRAMID_MIN_PX
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    xml = ome_xml(shape=arr.shape, dtype=arr.dtype.name, pixel_size_um=float(pixel_size_um),
                  acquisition=acquisition, position_um=position_um, settings=settings,
                  name=name, json_default=_json_default)
    desc = xml.encode("utf-8")  # TIFF ASCII tags are 7-bit; OME-XML is UTF-8 ("µm")
    res = 1e4 / float(pixel_size_um)  # pixels per cm
    tmp = create_temp_beside(path)  # the umask's permissions, unlike mkstemp's 0600
    try:
        if pyramid:
            levels = pyramid_levels(arr)
            tile = (TILE_PX, TILE_PX)
            opts: dict[str, Any] = {"photometric": "minisblack", "tile": tile,
                                    "compression": "zlib", "resolutionunit": "CENTIMETER"}
            with tifffile.TiffWriter(tmp, bigtiff=arr.nbytes > 2**30, ome=False) as tif:
                tif.write(levels[0], subifds=len(levels) - 1, description=desc,
                          metadata=None, resolution=(res, res), **opts)
                for k, lev in enumerate(levels[1:], start=1):
                    r = res / 2**k
                    tif.write(lev, subfiletype=1, metadata=None, resolution=(r, r), **opts)
        else:
            tifffile.imwrite(tmp, arr, photometric="minisblack", description=desc,
                             metadata=None, ome=False, resolution=(res, res),
                             resolutionunit="CENTIMETER")
        if sync:
            _fsync(tmp)
        os.replace(tmp, path)
        if sync:
            _fsync(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.debug("wrote %s: %s %s, channels %s, %s", path, arr.dtype.name, arr.shape,
              list(channel_names), "pyramid" if pyramid else "flat")
    return path


def write_mosaic(path: str | os.PathLike, data: NDArray, **kwargs: Any) -> tuple[Path, int]:
    """:func:`write_ome_tiff` with ``pyramid=None`` (a pyramid above
    :data:`PYRAMID_MIN_PX` px); returns the path and the number of resolution levels."""
    arr = np.asarray(data)
    n = len(level_shapes(arr.shape[-2:])) if max(arr.shape[-2:]) > PYRAMID_MIN_PX else 1
    return write_ome_tiff(path, arr, pyramid=n > 1, **kwargs), n


def level_shapes(shape: Sequence[int], min_px: int | None = None) -> list[tuple[int, int]]:
    """(Y, X) of each resolution level of an image of ``shape`` (Y, X): halved (rounded
    down) until the larger side is at most ``min_px`` (default :data:`TILE_PX`)."""
    min_px = TILE_PX if min_px is None else min_px
    out = [(int(shape[0]), int(shape[1]))]
    while max(out[-1]) > min_px and min(out[-1]) >= 2:
        out.append((out[-1][0] // 2, out[-1][1] // 2))
    return out


def pyramid_levels(arr: NDArray, min_px: int | None = None) -> list[NDArray]:
    """``arr`` (C, Y, X) and its 2x2-mean downsamplings, each half the previous (odd edges:
    the last row / column is dropped), until the larger side is at most ``min_px``. NaN
    pixels (not imaged) are left out of each mean; a block of NaN stays NaN."""
    levels = [arr]
    for _ in level_shapes(arr.shape[1:], min_px)[1:]:
        levels.append(downsample2(levels[-1]))
    return levels


def downsample2(arr: NDArray) -> NDArray:
    """2x2 block mean of (C, Y, X) over its finite pixels (NaN where a block has none)."""
    c, ny, nx = arr.shape
    a = arr[:, : ny // 2 * 2, : nx // 2 * 2].astype(np.float64)
    a = a.reshape(c, ny // 2, 2, nx // 2, 2)
    ok = np.isfinite(a)
    total = np.where(ok, a, 0.0).sum(axis=(2, 4))
    count = ok.sum(axis=(2, 4))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count
    return out.astype(arr.dtype, copy=False)


def read_ome_tiff(path: str | os.PathLike) -> OMEImage:
    """Read a file written by :func:`write_ome_tiff` (raises :class:`OMETiffError`)."""
    p = Path(path)
    if not p.is_file():
        raise OMETiffError(f"{p}: no such file")
    try:
        with tifffile.TiffFile(p) as tif:
            data = tif.asarray()
            xml = tif.ome_metadata
            nlevels = len(tif.series[0].levels) if tif.series else 1
    except (tifffile.TiffFileError, ValueError, OSError) as exc:
        raise OMETiffError(f"{p}: not a readable TIFF ({exc})") from exc
    if not xml:
        raise OMETiffError(f"{p}: TIFF has no OME-XML metadata")
    root = ET.fromstring(xml)
    ns = {"ome": root.tag.split("}")[0].strip("{")}
    pix = root.find(".//ome:Pixels", ns)
    if pix is None or pix.get("PhysicalSizeX") is None:
        raise OMETiffError(f"{p}: OME-XML has no physical pixel size")
    names = [ch.get("Name", f"C{i}") for i, ch in enumerate(pix.findall("ome:Channel", ns))]
    settings: dict[str, Any] = {}
    for ann in root.findall(".//ome:MapAnnotation", ns):
        if ann.get("Namespace") == SETTINGS_NAMESPACE:
            for m in ann.findall(".//ome:M", ns):
                if m.get("K") == "json" and m.text:
                    settings = json.loads(m.text)
    if data.ndim == 2:
        data = data[None]
    plane = pix.find("ome:Plane", ns)
    pos = None
    if plane is not None and plane.get("PositionX") is not None \
            and plane.get("PositionY") is not None:
        pos = (float(plane.get("PositionX")), float(plane.get("PositionY")))
    return OMEImage(data=data, channel_names=names, pixel_size_um=float(pix.get("PhysicalSizeX")),
                    settings=settings, levels=nlevels, position_um=pos)


def _fsync(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
