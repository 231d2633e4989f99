"""OME-TIFF files of SRASH frames: channel names, physical pixel size, settings.

Written so that Fiji (Bio-Formats) and napari show the right scale: OME-XML with
``PhysicalSizeX/Y`` in um, channel names, plane positions in stage um, plus TIFF resolution
tags; the full acquisition settings are a JSON string in an OME ``MapAnnotation``
(namespace :data:`SETTINGS_NAMESPACE`). Files are written atomically (temp file + rename),
so a crash never leaves half a file under the final name.
"""

from __future__ import annotations

import dataclasses
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tifffile
from numpy.typing import NDArray

from ml.common.errors import MLError
from ml.common.fileio import create_temp_beside

SETTINGS_NAMESPACE = "srash/settings"


class OMETiffError(MLError):
    """A file is not a readable SRASH OME-TIFF (malformed, missing metadata...)."""


@dataclasses.dataclass
class OMEImage:
    """An OME-TIFF read back: data (C, Y, X), channel names, pixel size (um), settings."""

    data: NDArray
    channel_names: list[str]
    pixel_size_um: float
    settings: dict[str, Any]


def write_ome_tiff(path: str | os.PathLike, data: NDArray, *, channel_names: Sequence[str],
                   pixel_size_um: float, position_um: tuple[float, float] | None = None,
                   settings: dict[str, Any] | None = None, sync: bool = False) -> Path:
    """Write a (C, Y, X) array (or (Y, X)) as OME-TIFF; returns the path.

    ``position_um``: stage (x, y) of the field's top-left corner, stored per plane.
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    c = arr.shape[0]
    meta: dict[str, Any] = {
        "axes": "CYX",
        "PhysicalSizeX": float(pixel_size_um), "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": float(pixel_size_um), "PhysicalSizeYUnit": "µm",
        "Channel": {"Name": [str(n) for n in channel_names]},
        "MapAnnotation": {"Namespace": SETTINGS_NAMESPACE,
                          "json": json.dumps(settings or {}, default=_json_default)},
    }
    if position_um is not None:
        meta["Plane"] = {"PositionX": [float(position_um[0])] * c, "PositionXUnit": ["µm"] * c,
                         "PositionY": [float(position_um[1])] * c, "PositionYUnit": ["µm"] * c}
    res = 1e4 / float(pixel_size_um)  # pixels per cm
    tmp = create_temp_beside(path)  # the umask's permissions, unlike mkstemp's 0600
    try:
        tifffile.imwrite(tmp, arr, photometric="minisblack", metadata=meta, ome=True,
                         resolution=(res, res), resolutionunit="CENTIMETER")
        if sync:
            _fsync(tmp)
        os.replace(tmp, path)
        if sync:
            _fsync(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_ome_tiff(path: str | os.PathLike) -> OMEImage:
    """Read a file written by :func:`write_ome_tiff` (raises :class:`OMETiffError`)."""
    p = Path(path)
    if not p.is_file():
        raise OMETiffError(f"{p}: no such file")
    try:
        with tifffile.TiffFile(p) as tif:
            data = tif.asarray()
            xml = tif.ome_metadata
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
    return OMEImage(data=data, channel_names=names, pixel_size_um=float(pix.get("PhysicalSizeX")),
                    settings=settings)


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
