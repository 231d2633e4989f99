"""``srash simulate fov|stack``: synthesize SRASH frames with the physics simulators."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from plans.contract import PHENOTYPES, SHG_CHANNEL, srs_channel
from simulators.errors import SettingsError
from simulators.specimens import SPECIMEN_KINDS, make_specimen

if TYPE_CHECKING:  # pragma: no cover (the forward model loads when a command runs)
    from ml.io.processed import ProcessedField
    from simulators.instrument import FieldResult

from .options import parse_floats

log = logging.getLogger("srash.cli.simulate")


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("specimen")
    g.add_argument("--specimen", choices=SPECIMEN_KINDS, default="testis",
                   help="specimen to image (default: testis)")
    g.add_argument("--phenotype", choices=PHENOTYPES, default=None,
                   help="testis phenotype (default: normal)")
    g.add_argument("--seed", type=int, default=0, help="specimen seed (default: 0)")
    g.add_argument("--noise-seed", type=int, default=1,
                   help="seed of detector noise, drift and jitter (default: 1)")
    g.add_argument("--x-um", type=float, default=None,
                   help="field centre x in specimen um; image columns run along +x "
                        "(default: a specimen-chosen field with tissue)")
    g.add_argument("--y-um", type=float, default=None,
                   help="field centre y in specimen um; image rows run along +y")
    s = p.add_argument_group("scan")
    s.add_argument("--fov-um", type=float, default=360.0, help="field of view (um, default 360)")
    s.add_argument("--pixels", type=int, default=1200, help="pixels per side (default 1200)")
    s.add_argument("--dwell-us", type=float, default=10.0, help="pixel dwell (us, default 10)")
    s.add_argument("--averages", type=int, default=3, help="frame averages (default 3)")
    s.add_argument("--bidirectional", action="store_true", help="bidirectional scanning")
    las = p.add_argument_group("lasers")
    las.add_argument("--pump-power-mw", type=float, default=40.0,
                     help="pump power at the sample (mW, default 40)")
    las.add_argument("--stokes-power-mw", type=float, default=40.0,
                     help="Stokes power at the sample (mW, default 40)")
    las.add_argument("--stokes-nm", type=float, default=1031.0,
                     help="Stokes wavelength (nm, default 1031.0)")
    o = p.add_argument_group("output")
    o.add_argument("--out", type=Path, default=None,
                   help="OME-TIFF to write (C, Y, X: one channel per SRS shift, then SHG)")
    o.add_argument("--processed", action="store_true",
                   help="write background-subtracted, power-normalised frames instead of raw")
    o.add_argument("--truth", type=Path, default=None,
                   help="also write the per-pixel truth labels (uint8 OME-TIFF)")
    o.add_argument("--png", type=Path, default=None, help="PNG preview to write")
    o.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="synthesize frames with the physics simulators",
                       description="Synthesize SRASH frames (no hardware, no catalog).")
    ss = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    fov = ss.add_parser(
        "fov", help="one field: SRS at each Raman shift + SHG",
        description="Simulate one SRASH field of view: an SRS frame per Raman shift (lock-in "
                    "volts) and the SHG frame (PMT volts), as the real instrument would record "
                    "them. Use --pump-nm 795.9,790.9 to reproduce the paper's wavelengths "
                    "(physically 2865.1/2944.5 cm^-1 with a 1031 nm Stokes).")
    _common(fov)
    ch = fov.add_mutually_exclusive_group()
    ch.add_argument("--shifts", type=parse_floats, default=None,
                    help="Raman shifts in cm^-1, comma-separated (default 2850,2930); the "
                         "pump is tuned to give exactly these")
    ch.add_argument("--pump-nm", type=parse_floats, default=None,
                    help="pump wavelengths in nm (the physical shifts are computed)")
    fov.set_defaults(func=run_fov)
    st = ss.add_parser(
        "stack", help="hyperspectral SRS stack over a Raman-shift range",
        description="Simulate a hyperspectral SRS stack at one position (one frame per shift, "
                    "each with its own OPO power and registration jitter).")
    _common(st)
    st.add_argument("--start", type=float, default=2800.0, help="first shift (cm^-1, 2800)")
    st.add_argument("--stop", type=float, default=3050.0, help="last shift (cm^-1, 3050)")
    st.add_argument("--step", type=float, default=5.0, help="shift step (cm^-1, 5)")
    st.set_defaults(func=run_stack, specimen="cells", pixels=512, fov_um=102.4, averages=1)


def _build(args: argparse.Namespace):
    if args.phenotype is not None and args.specimen != "testis":
        raise SettingsError(f"--phenotype applies to --specimen testis only, not {args.specimen}")
    specimen = make_specimen(args.specimen, args.seed, phenotype=args.phenotype)
    x, y = args.x_um, args.y_um
    if x is None or y is None:
        dx, dy = _default_center(specimen)
        x = dx if x is None else x
        y = dy if y is None else y
    if not args.dwell_us > 0:
        raise SettingsError(f"--dwell-us {args.dwell_us:g} not allowed: must be > 0")
    from simulators.instrument import build_simulator

    sim = build_simulator(
        specimen, pixels=args.pixels, fov_um=args.fov_um, dwell_s=args.dwell_us * 1e-6,
        averages=args.averages, bidirectional=args.bidirectional, pump_mw=args.pump_power_mw,
        stokes_mw=args.stokes_power_mw, stokes_nm=args.stokes_nm, x_um=x, y_um=y)
    return sim


def _default_center(specimen) -> tuple[float, float]:
    x, y = specimen.default_center_um()
    return float(x), float(y)


def _summary(field: FieldResult, out: Path | None, elapsed: float, processed: bool,
             sim, png: Path | None) -> dict[str, Any]:
    return {
        "path": str(out) if out else None,
        "png": str(png) if png else None,
        "processed": processed,
        "shape": list(field.raw.shape),
        "channels": channel_names(field),
        "pixel_size_um": field.pixel_um,
        "center_um": list(field.window.center_um),
        "raman_shifts_cm1": [round(s, 2) for s in field.raman_shifts_cm1],
        "nominal_shifts_cm1": field.nominal_shifts_cm1,
        "pump_nm": [round(v, 3) for v in field.pump_nm],
        "stokes_nm": field.stokes_nm,
        "pump_power_mw": [round(v, 3) for v in field.pump_mw],
        "stokes_power_mw": [round(v, 3) for v in field.stokes_mw],
        "elapsed_s": round(elapsed, 4),
        "instrument_time_s": round(field.instrument_time_s, 3),
        "instrument_time_breakdown_s": {k: round(v, 3) for k, v in field.time_s.items()},
        "faults": field.faults,
        "specimen": sim.specimen.describe()["kind"],
        "seed": sim.specimen.seed,
    }


def channel_names(field: FieldResult) -> list[str]:
    """The field's channel names in the contract's spelling: one SRS channel per physical
    Raman shift (:func:`plans.contract.srs_channel`), then SHG when recorded."""
    names = [srs_channel(s) for s in field.raman_shifts_cm1]
    return names + [SHG_CHANNEL] * (len(field.channel_names) - len(names))


def _write(args, sim, field: FieldResult, rng, elapsed: float, kind: str) -> dict[str, Any]:
    from ml.io.ometiff import write_ome_tiff
    from ml.io.omexml import Acquisition, instrument_from_settings

    from ..preview import save_field_png, save_stack_png

    proc: ProcessedField | None = None
    if args.processed or args.png is not None:
        from ml.io.processed import process_field

        proc = process_field(sim, field, rng)
    settings = {"kind": kind, "processed": bool(args.processed),
                "raman_shifts_cm1": field.raman_shifts_cm1,
                "nominal_shifts_cm1": field.nominal_shifts_cm1, "pump_nm": field.pump_nm,
                "pump_power_mw": field.pump_mw, "stokes_power_mw": field.stokes_mw,
                "faults": field.faults, "instrument": field.settings,
                "units": "V at reference power, background subtracted" if args.processed
                else "detector V (lock-in output / PMT)"}
    x0, _, y0, _ = field.window.extent_um
    names = channel_names(field)
    instrument = instrument_from_settings(field.settings)
    if args.out is not None:
        data = proc.data if (args.processed and proc is not None) else field.raw
        n_srs = len(field.raman_shifts_cm1)
        pumps = list(field.pump_nm) + [field.pump_nm[0]] * (len(names) - n_srs)  # SHG: 1st
        acq = Acquisition.build(names, pump_nm=pumps, shifts_cm1=field.raman_shifts_cm1,
                                instrument=instrument, acquired=time.time())
        write_ome_tiff(args.out, data, channel_names=names, pixel_size_um=field.pixel_um,
                       position_um=(x0, y0), settings=settings, acquisition=acq,
                       name=f"simulated {kind}")
        log.info("wrote %s: %s channels %s", args.out, kind, names)
    if args.truth is not None:
        write_ome_tiff(args.truth, field.truth.labels[None], channel_names=["labels"],
                       pixel_size_um=field.pixel_um, position_um=(x0, y0),
                       settings={"labels": {lab.name: int(lab) for lab in _labels()}},
                       acquisition=Acquisition.build(["labels"], instrument=instrument,
                                                     acquired=time.time()),
                       name=f"simulated {kind}: truth labels")
    if args.png is not None and proc is not None:
        if kind == "stack":
            save_stack_png(args.png, proc, field)
        else:
            save_field_png(args.png, proc)
    summary = _summary(field, args.out, elapsed, bool(args.processed), sim, args.png)
    if args.truth is not None:
        summary["truth"] = str(args.truth)
    return summary


def _labels():
    from simulators.specimens.base import Label

    return list(Label)


def _emit(args, summary: dict[str, Any]) -> int:
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{summary['shape'][0]} channels {_short(summary['channels'])} of "
          f"{summary['shape'][1]}x{summary['shape'][2]} px at {summary['pixel_size_um']:.3f} um")
    print(f"Raman shifts (physical): {_short(summary['raman_shifts_cm1'])} cm^-1 "
          f"(pump {_short(summary['pump_nm'])} nm, Stokes {summary['stokes_nm']} nm)")
    print(f"simulated in {summary['elapsed_s']:.2f} s; the real instrument would take "
          f"{summary['instrument_time_s']:.1f} s "
          f"({summary['instrument_time_s'] / max(summary['elapsed_s'], 1e-9):.0f}x)")
    bad = {k: v for k, v in summary["faults"].items() if v and not k.endswith("_row")}
    print("faults: " + (json.dumps(bad) if bad else "none"))
    for key in ("path", "truth", "png"):
        if summary.get(key):
            print(f"wrote {summary[key]}")
    return 0


def _short(values: list) -> str:
    """A list as text, abbreviated to first, second ... last when long."""
    if len(values) <= 6:
        return str(values)
    return f"[{values[0]}, {values[1]}, ..., {values[-1]}] ({len(values)})"


def run_fov(args: argparse.Namespace) -> int:
    sim = _build(args)
    from simulators.instrument import noise_generators

    rng, _ = noise_generators(args.noise_seed)  # the frame generator a scan's detector uses
    t0 = time.perf_counter()
    field = sim.field(rng, shifts_cm1=args.shifts, pump_nm=args.pump_nm)
    elapsed = time.perf_counter() - t0
    return _emit(args, _write(args, sim, field, rng, elapsed, "fov"))


def run_stack(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if not args.step > 0:
        raise SettingsError(f"--step {args.step:g} cm^-1 not allowed: must be > 0")
    if not args.stop > args.start:
        raise SettingsError(f"--stop {args.stop:g} must exceed --start {args.start:g} cm^-1")
    shifts = list(np.arange(args.start, args.stop + args.step / 2, args.step))
    if len(shifts) > 1000:
        raise SettingsError(f"{len(shifts)} bands requested: at most 1000 allowed")
    sim = _build(args)
    from simulators.instrument import noise_generators

    rng, _ = noise_generators(args.noise_seed)
    t0 = time.perf_counter()
    with tqdm(total=len(shifts), desc="stack", unit="band", disable=args.json or None,
              file=sys.stderr) as bar:
        field = sim.stack(rng, shifts, progress=lambda i, n: bar.update(1))
    elapsed = time.perf_counter() - t0
    return _emit(args, _write(args, sim, field, rng, elapsed, "stack"))
