"""The OME-XML of SRASH files: what a facility expects to find in every frame, stack and export.

One :class:`Acquisition` describes how an image was acquired; :func:`ome_xml` turns it into
an OME-XML document (schema 2016-06) with

- ``Image/AcquisitionDate`` (UTC);
- ``Instrument``: the two lasers (``LightSource:pump``, the tunable OPO, and
  ``LightSource:stokes``), the SRS detector (photodiode + lock-in, ``Type="Photodiode"``) and
  the SHG ``PMT`` as ``Detector`` s, the ``Objective`` (NA, magnification, immersion);
- per ``Channel``: the name (spelled by :func:`plans.contract.srs_channel` for SRS
  channels), ``ExcitationWavelength`` = the channel's pump wavelength (nm), for SHG
  ``EmissionWavelength`` = half of it, ``LightSourceSettings`` (the pump at that wavelength),
  ``DetectorSettings`` and a ``MapAnnotation`` (namespace :data:`CHANNEL_NAMESPACE`) with
  the channel's physical Raman shift (cm^-1), pump and Stokes wavelengths (nm);
- ``Plane`` positions of the image's top-left corner in stage micrometres;
- the full acquisition settings as JSON in a ``MapAnnotation``
  (namespace :data:`SETTINGS_NAMESPACE`);
- ``TiffData``: plane ``c`` is IFD ``c`` (pyramid levels, when present, are the SubIFDs of
  each plane: tifffile reads them as ``series.levels``).

Built with the standard library only (no ome-types at run time); the tests validate it with
ome-types. Immersion media follow the OME enumeration (:func:`immersion_of`).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import uuid
import xml.etree.ElementTree as ET
from typing import Any, Callable, Mapping, Sequence

from plans.contract import SHG_CHANNEL, srs_channel_shift

__all__ = ["CHANNEL_NAMESPACE", "OME_NS", "SETTINGS_NAMESPACE", "Acquisition", "ChannelInfo",
           "ObjectiveInfo", "immersion_of", "instrument_from_settings", "ome_xml"]

OME_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
SETTINGS_NAMESPACE = "srash/settings"
CHANNEL_NAMESPACE = "srash/channel"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_DTYPES = {"float32": "float", "float64": "double", "uint8": "uint8", "uint16": "uint16",
           "uint32": "uint32", "int8": "int8", "int16": "int16", "int32": "int32"}


@dataclasses.dataclass(frozen=True)
class ObjectiveInfo:
    """The objective: numerical aperture, magnification, immersion refractive index."""

    na: float
    magnification: float | None = None
    immersion_index: float | None = None


@dataclasses.dataclass(frozen=True)
class ChannelInfo:
    """One image channel: its name and, for SRS / SHG channels, the pump wavelength (nm)
    and the physical Raman shift (cm^-1) it was acquired at."""

    name: str
    pump_nm: float | None = None
    raman_shift_cm1: float | None = None

    @property
    def kind(self) -> str:
        """``"SRS"``, ``"SHG"`` or ``"other"`` (e.g. a label map)."""
        if self.name == SHG_CHANNEL:
            return "SHG"
        return "SRS" if srs_channel_shift(self.name) is not None else "other"


@dataclasses.dataclass(frozen=True)
class Acquisition:
    """How an image was acquired (everything optional but the channels).

    ``acquired``: when (timezone-aware, or naive UTC); ``stokes_nm``: the Stokes
    wavelength (nm); ``pump_range_nm``: the OPO's tuning range; ``rep_rate_mhz``: the
    lasers' repetition rate; ``objective``; ``channels`` in array order.
    """

    channels: tuple[ChannelInfo, ...]
    acquired: _dt.datetime | None = None
    stokes_nm: float | None = None
    pump_range_nm: tuple[float, float] | None = None
    rep_rate_mhz: float | None = None
    objective: ObjectiveInfo | None = None

    @classmethod
    def build(cls, names: Sequence[str], *, pump_nm: Sequence[float | None] | None = None,
              shifts_cm1: Sequence[float | None] | None = None,
              instrument: Mapping[str, Any] | None = None,
              acquired: _dt.datetime | float | None = None) -> "Acquisition":
        """From channel names, the pump wavelength (nm) and physical shift (cm^-1) per
        channel (None where it does not apply) and an instrument description
        (:func:`instrument_from_settings`); ``acquired`` a datetime or a UNIX time (s)."""
        n = len(names)
        pumps = list(pump_nm) if pump_nm is not None else [None] * n
        shifts = list(shifts_cm1) if shifts_cm1 is not None else [None] * n
        chans = tuple(ChannelInfo(str(nm), _opt(p), _opt(s))
                      for nm, p, s in zip(names, pumps + [None] * n, shifts + [None] * n))
        inst = dict(instrument or {})
        obj = inst.get("objective") or None
        when: _dt.datetime | None
        if isinstance(acquired, (int, float)):
            when = _dt.datetime.fromtimestamp(float(acquired), _dt.timezone.utc)
        else:
            when = acquired
        rng = inst.get("pump_range_nm")
        return cls(channels=chans, acquired=when, stokes_nm=_opt(inst.get("stokes_nm")),
                   pump_range_nm=(float(rng[0]), float(rng[1])) if rng else None,
                   rep_rate_mhz=_opt(inst.get("rep_rate_mhz")),
                   objective=ObjectiveInfo(float(obj["na"]), _opt(obj.get("magnification")),
                                           _opt(obj.get("immersion_index"))) if obj else None)


def instrument_from_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The instrument description (JSON-safe) from a simulator's ``settings()`` dump:
    ``stokes_nm``, ``pump_range_nm``, ``rep_rate_mhz`` and ``objective`` (``na``,
    ``magnification``, ``immersion_index``); keys missing from ``settings`` are left out."""
    out: dict[str, Any] = {}
    stokes = (settings.get("stokes") or {}).get("config") or {}
    if "wavelength_nm" in stokes:
        out["stokes_nm"] = float(stokes["wavelength_nm"])
    pump = (settings.get("pump") or {}).get("config") or {}
    if "min_nm" in pump and "max_nm" in pump:
        out["pump_range_nm"] = [float(pump["min_nm"]), float(pump["max_nm"])]
    if "rep_rate_mhz" in pump:
        out["rep_rate_mhz"] = float(pump["rep_rate_mhz"])
    obj = settings.get("objective") or {}
    if "na" in obj:
        out["objective"] = {k: float(obj[k]) for k in ("na", "magnification", "immersion_index")
                            if obj.get(k) is not None}
    return out


def immersion_of(index: float | None) -> str:
    """The OME ``Immersion`` of a refractive index: Air (1.0), Water (1.33), Glycerol
    (1.47), Oil (1.51-1.52), else Other."""
    if index is None:
        return "Other"
    for name, n in (("Air", 1.0), ("Water", 1.333), ("Glycerol", 1.47), ("Oil", 1.515)):
        if abs(index - n) <= 0.01:
            return name
    return "Other"


def ome_xml(*, shape: tuple[int, int, int], dtype: str, pixel_size_um: float,
            acquisition: Acquisition, position_um: tuple[float, float] | None = None,
            settings: Mapping[str, Any] | None = None, name: str | None = None,
            json_default: Callable[[Any], Any] | None = None) -> str:
    """The OME-XML (module doc) of one (C, Y, X) image of numpy ``dtype``."""
    c, ny, nx = (int(v) for v in shape)
    if len(acquisition.channels) != c:
        raise ValueError(f"{len(acquisition.channels)} channels described for {c}")
    ET.register_namespace("", OME_NS)
    ET.register_namespace("xsi", _XSI)
    q = _q
    root = ET.Element(q("OME"), {
        "UUID": f"urn:uuid:{uuid.uuid4()}", "Creator": "srash",
        f"{{{_XSI}}}schemaLocation": f"{OME_NS} {OME_NS}/ome.xsd"})
    acq = acquisition
    chans = acq.channels
    has_srs = any(ch.kind == "SRS" for ch in chans)
    has_shg = any(ch.kind == "SHG" for ch in chans)
    has_lasers = has_srs or has_shg
    inst = ET.SubElement(root, q("Instrument"), ID="Instrument:0")
    ET.SubElement(inst, q("Microscope"), Model="SRASH (SRS + SHG) laser-scanning microscope",
                  Type="Other")
    if has_lasers:
        first_pump = next((ch.pump_nm for ch in chans if ch.pump_nm is not None), None)
        pump_attrs = {"ID": "LightSource:pump", "Model": "tunable ps OPO (pump)",
                      "Type": "Other", "LaserMedium": "Other", "Tuneable": "true",
                      "Pulse": "ModeLocked"}
        if first_pump is not None:
            pump_attrs.update(Wavelength=_num(first_pump), WavelengthUnit="nm")
        if acq.rep_rate_mhz is not None:
            pump_attrs.update(RepetitionRate=_num(acq.rep_rate_mhz), RepetitionRateUnit="MHz")
        ET.SubElement(inst, q("Laser"), pump_attrs)
        stokes_attrs = {"ID": "LightSource:stokes", "Model": "ps fibre laser (Stokes)",
                        "Type": "SolidState", "LaserMedium": "Other", "Tuneable": "false",
                        "Pulse": "ModeLocked"}
        if acq.stokes_nm is not None:
            stokes_attrs.update(Wavelength=_num(acq.stokes_nm), WavelengthUnit="nm")
        if acq.rep_rate_mhz is not None:
            stokes_attrs.update(RepetitionRate=_num(acq.rep_rate_mhz),
                                RepetitionRateUnit="MHz")
        ET.SubElement(inst, q("Laser"), stokes_attrs)
        ET.SubElement(inst, q("Detector"), ID="Detector:srs", Type="Photodiode",
                      Model="photodiode + lock-in amplifier (SRS, stimulated Raman loss)")
        ET.SubElement(inst, q("Detector"), ID="Detector:shg", Type="PMT",
                      Model="photomultiplier tube (SHG)")
    if acq.objective is not None:
        o = acq.objective
        oattrs = {"ID": "Objective:0", "LensNA": _num(o.na),
                  "Immersion": immersion_of(o.immersion_index)}
        if o.magnification is not None:
            oattrs["NominalMagnification"] = _num(o.magnification)
        ET.SubElement(inst, q("Objective"), oattrs)

    image = ET.SubElement(root, q("Image"), ID="Image:0", **({"Name": name} if name else {}))
    if acq.acquired is not None:
        ET.SubElement(image, q("AcquisitionDate")).text = _iso(acq.acquired)
    ET.SubElement(image, q("InstrumentRef"), ID="Instrument:0")
    if acq.objective is not None:
        os_attrs = {"ID": "Objective:0"}
        if acq.objective.immersion_index is not None:
            os_attrs["RefractiveIndex"] = _num(acq.objective.immersion_index)
        ET.SubElement(image, q("ObjectiveSettings"), os_attrs)
    px = {"ID": "Pixels:0", "DimensionOrder": "XYCZT", "Type": _DTYPES.get(dtype, dtype),
          "SizeX": str(nx), "SizeY": str(ny), "SizeC": str(c), "SizeZ": "1", "SizeT": "1",
          "PhysicalSizeX": _num(pixel_size_um), "PhysicalSizeXUnit": "µm",
          "PhysicalSizeY": _num(pixel_size_um), "PhysicalSizeYUnit": "µm",
          "BigEndian": "false", "Interleaved": "false"}
    pixels = ET.SubElement(image, q("Pixels"), px)
    annotations: list[tuple[str, str, dict[str, str]]] = []
    for i, ch in enumerate(chans):
        attrs = {"ID": f"Channel:0:{i}", "Name": ch.name, "SamplesPerPixel": "1"}
        if ch.kind != "other":
            attrs.update(IlluminationType="NonLinear", ContrastMethod="Other",
                         AcquisitionMode=("SecondHarmonicGenerationImaging" if ch.kind == "SHG"
                                          else "Other"))
        if ch.kind != "other" and ch.pump_nm is not None:
            attrs.update(ExcitationWavelength=_num(ch.pump_nm), ExcitationWavelengthUnit="nm")
            if ch.kind == "SHG":
                attrs.update(EmissionWavelength=_num(ch.pump_nm / 2),
                             EmissionWavelengthUnit="nm")
        el = ET.SubElement(pixels, q("Channel"), attrs)
        if ch.kind != "other":
            ls = {"ID": "LightSource:pump"}
            if ch.pump_nm is not None:
                ls.update(Wavelength=_num(ch.pump_nm), WavelengthUnit="nm")
            ET.SubElement(el, q("LightSourceSettings"), ls)
            ET.SubElement(el, q("DetectorSettings"),
                          ID="Detector:shg" if ch.kind == "SHG" else "Detector:srs")
            kv = {"kind": ch.kind}
            if ch.raman_shift_cm1 is not None and ch.kind == "SRS":
                kv["raman_shift_cm1"] = _num(ch.raman_shift_cm1)
            if ch.pump_nm is not None:
                kv["pump_nm"] = _num(ch.pump_nm)
            if acq.stokes_nm is not None and ch.kind == "SRS":
                kv["stokes_nm"] = _num(acq.stokes_nm)
            aid = f"Annotation:channel:{i}"
            ET.SubElement(el, q("AnnotationRef"), ID=aid)
            annotations.append((aid, CHANNEL_NAMESPACE, kv))
    ET.SubElement(pixels, q("TiffData"), IFD="0", PlaneCount=str(c))
    for i in range(c):
        pl = {"TheZ": "0", "TheT": "0", "TheC": str(i)}
        if position_um is not None:
            pl.update(PositionX=_num(position_um[0]), PositionXUnit="µm",
                      PositionY=_num(position_um[1]), PositionYUnit="µm")
        ET.SubElement(pixels, q("Plane"), pl)
    ET.SubElement(image, q("AnnotationRef"), ID="Annotation:settings")
    sa = ET.SubElement(root, q("StructuredAnnotations"))
    ma = ET.SubElement(sa, q("MapAnnotation"), ID="Annotation:settings",
                       Namespace=SETTINGS_NAMESPACE)
    val = ET.SubElement(ma, q("Value"))
    ET.SubElement(val, q("M"), K="json").text = json.dumps(settings or {}, default=json_default)
    for aid, ns, kv in annotations:
        ma = ET.SubElement(sa, q("MapAnnotation"), ID=aid, Namespace=ns)
        val = ET.SubElement(ma, q("Value"))
        for k, v in kv.items():
            ET.SubElement(val, q("M"), K=k).text = v
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _q(tag: str) -> str:
    return f"{{{OME_NS}}}{tag}"


def _num(v: float) -> str:
    return repr(float(v))


def _opt(v: Any) -> float | None:
    return None if v is None else float(v)


def _iso(when: _dt.datetime) -> str:
    if when.tzinfo is not None:
        when = when.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return when.isoformat(timespec="seconds") + "Z"
