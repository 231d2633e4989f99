"""Classifier composites of catalog runs (the offline half of LBNet-Dx's input path).

A mosaic run's fields are rebuilt with :func:`ml.io.runs.run_tiles` (raw detector
volts + the frame powers and shifts from the event columns), and turned into the
classifier's [0, 1] composite with :func:`ml.io.composite.field_composite` and the run's
``start["calibration"]`` record. The live callback (:mod:`ml.dx.live`) reads the same
files and calls the same function, so both paths give bit-identical composites.

Fields whose pixel size differs from the classifier's (``target_pixel_um``) are resampled
with linear interpolation (:func:`resample`) so that a 300 px patch always spans the same
tissue area (90 um at the paper's 0.3 um/px).

Faults (:mod:`ml.io.frames`): :func:`select_runs` leaves out runs without a stop
document (one warning each), fields with an unreadable frame file are skipped with a warning
naming the file; a :class:`~ml.io.frames.ReadFaults` with ``strict=True`` stops at
the first instead.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
from numpy.typing import NDArray

from ml.common.errors import MLError
from ml.io.composite import Calibration, field_composite
from ml.io.frames import ReadFaults
from ml.io.runs import ExportError, Tile, run_tiles

__all__ = ["FieldComposite", "run_fields", "tile_composite", "resample",
           "DatasetError", "PatchDataset", "select_runs", "iter_run_fields", "load_patches",
           "load_patch_sets",
           "PIXEL_TOLERANCE"]

#: Relative pixel-size difference below which no resampling is done.
PIXEL_TOLERANCE = 0.01


@dataclasses.dataclass
class FieldComposite:
    """One field of a run: its tile (geometry, raw volts) and the classifier composite."""

    tile: Tile
    composite: NDArray[np.float32]
    pixel_um: float


def resample(image: NDArray[np.float32], pixel_um: float, target_pixel_um: float
             ) -> NDArray[np.float32]:
    """Resample a ``(C, H, W)`` image from ``pixel_um`` to ``target_pixel_um`` (linear)."""
    if abs(pixel_um - target_pixel_um) <= PIXEL_TOLERANCE * target_pixel_um:
        return image
    from scipy import ndimage

    z = pixel_um / target_pixel_um
    out = ndimage.zoom(image, (1, z, z), order=1, mode="nearest", grid_mode=True)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def tile_composite(tile: Tile, calibration: Calibration, *,
                   target_pixel_um: float | None = None) -> NDArray[np.float32]:
    """Composite ``(3, H, W)`` of a tile (``tile.data`` in CHANNELS order 2850, 2930, SHG)."""
    if not (np.isfinite(tile.pump_mw).all() and np.isfinite(tile.stokes_mw).all()):
        raise ExportError(f"field {tile.index}: the run does not record the frame laser "
                          "powers, so it cannot be power-normalised")
    c = field_composite(tile.data[0], tile.data[1], tile.data[2], calibration=calibration,
                        shifts_cm1=tile.shifts_cm1, pump_mw=tile.pump_mw,
                        stokes_mw=tile.stokes_mw)
    if target_pixel_um is not None:
        c = resample(c, tile.pixel_um, target_pixel_um)
    return c


def run_fields(run, *, target_pixel_um: float | None = None,
               faults: ReadFaults | None = None) -> Iterator[FieldComposite]:
    """Yield the classifier composite of every complete field of a mosaic run, in
    acquisition order. Raises :class:`ml.io.composite.CalibrationError` when the run has no
    calibration record, :class:`ExportError` when it has no image stream; fields with an
    unreadable frame file: :func:`ml.io.runs.run_tiles` (``faults``)."""
    cal = Calibration.from_dict(run.metadata["start"].get("calibration"))
    tiles, _ = run_tiles(run, faults=faults)
    for t in tiles:
        yield FieldComposite(tile=t, composite=tile_composite(t, cal,
                                                              target_pixel_um=target_pixel_um),
                             pixel_um=target_pixel_um or t.pixel_um)


# --------------------------------------------------------------------------- datasets
class DatasetError(MLError):
    """The catalog query found no usable runs, or one class is missing."""


def select_runs(found: Iterable[Any], task, *, criteria: Mapping[str, Any] | None = None,
                faults: ReadFaults | None = None) -> list:
    """The usable runs among ``found`` (mosaic runs a catalog search returned for
    ``criteria``, e.g. ``srash_ophyd.catalog.search_runs(client, plan="mosaic",
    phenotype=task.all_phenotypes, cohort=...)``), oldest first.

    Only runs whose start document has a ``phenotype`` the task labels are returned; runs
    that stopped part-way are kept (their complete fields are usable; ``faults`` lists
    them as incomplete), runs without a stop document are left out with a warning
    (``faults.strict``: :class:`~ml.io.runstate.IncompleteRunError`).
    """
    faults = faults if faults is not None else ReadFaults()
    phenotypes = set(task.all_phenotypes)
    found = [r for r in found
             if (r.metadata.get("start") or {}).get("phenotype") in phenotypes]
    runs = faults.runs(found)
    if not runs:
        crit = {k: v for k, v in (criteria or {}).items() if v is not None}
        killed = (f" ({len(found)} found, none with a stop document: run `srash catalog "
                  "repair`)") if found else ""
        raise DatasetError(f"no {'readable ' if found else ''}mosaic runs of phenotypes "
                           f"{list(task.all_phenotypes)} match {crit or 'the catalog'}{killed}"
                           ": acquire some with `srash cohort`")
    return runs


@dataclasses.dataclass
class PatchDataset:
    """Patches of many fields: ``x`` float32 (N, 3, S, S) in [0, 1], labels ``y``, vote
    ``weights``, ``groups`` (patient id per patch), ``field`` (index into ``fields``)."""

    x: NDArray[np.float32]
    y: NDArray[np.int64]
    weights: NDArray[np.float64]
    groups: NDArray[np.object_]
    field: NDArray[np.int64]
    fields: list[dict[str, Any]]

    def __len__(self) -> int:
        return int(self.y.size)

    def subset(self, mask: NDArray[np.bool_]) -> "PatchDataset":
        return PatchDataset(self.x[mask], self.y[mask], self.weights[mask], self.groups[mask],
                            self.field[mask], self.fields)


def iter_run_fields(runs, task, *, target_pixel_um: float, progress: bool = True,
                    desc: str = "fields", faults: ReadFaults | None = None):
    """Yield ``(field_info, FieldComposite)`` over the runs; ``field_info`` has run uid,
    sample, patient, phenotype, label, seed and field index. Runs without a stop document
    and fields with an unreadable frame file are skipped with a warning (``faults``)."""
    from tqdm import tqdm

    faults = faults if faults is not None else ReadFaults()
    bar = tqdm(total=None, desc=desc, unit="field", disable=not progress, file=sys.stderr)
    try:
        for run in runs:
            start = run.metadata["start"]
            label = task.label(start.get("phenotype"))
            if label is None or not faults.usable(run):
                continue
            for fc in run_fields(run, target_pixel_um=target_pixel_um, faults=faults):
                info = {"run_uid": start["uid"], "sample_id": start.get("sample_id"),
                        "patient_id": start.get("patient_id") or start.get("sample_id")
                        or start["uid"], "phenotype": start.get("phenotype"),
                        "label": int(label), "specimen_seed": start.get("specimen_seed"),
                        "field_index": fc.tile.index, "x_um": fc.tile.x_um,
                        "y_um": fc.tile.y_um}
                bar.update(1)
                yield info, fc
    finally:
        bar.close()


def load_patches(runs, task, *, patches_per_field: int | None = None, seed: int = 0,
                 patch=None, target_pixel_um: float = 0.3, progress: bool = True,
                 faults: ReadFaults | None = None) -> PatchDataset:
    """Valid patches of every field of ``runs`` labelled by ``task`` (:class:`ml.dx.predict.Task`),
    cut with ``patch(composite) -> PatchSet`` (default :func:`ml.dx.predict.field_patches` with the
    classifier's default rule; pass a trained model's :meth:`ml.dx.predict.LBNetDx.patches` to use
    its stored rule), at most ``patches_per_field`` per field (a seeded uniform subsample
    without replacement; None = all). Faults: :func:`iter_run_fields`."""
    return load_patch_sets(runs, task, [(patches_per_field, seed)], patch=patch,
                           target_pixel_um=target_pixel_um, progress=progress,
                           faults=faults)[0]


def load_patch_sets(runs, task, specs, *, patch=None, target_pixel_um: float = 0.3,
                    progress: bool = True, faults: ReadFaults | None = None
                    ) -> list[PatchDataset]:
    """Several :func:`load_patches` datasets, one per ``(patches_per_field, seed)`` in
    ``specs``, from a single pass over the runs (each field's files are read and patched
    once). Each dataset equals what :func:`load_patches` gives for its spec."""
    if patch is None:
        from ml.dx.predict import field_patches as patch
    rngs = [np.random.default_rng(seed) for _, seed in specs]
    parts: list[dict[str, list]] = [{k: [] for k in "xywgf"} for _ in specs]
    fields: list[dict[str, Any]] = []
    for info, fc in iter_run_fields(runs, task, target_pixel_um=target_pixel_um,
                                    progress=progress, desc="patches", faults=faults):
        ps = patch(fc.composite)
        info["n_valid"] = len(ps)
        fields.append(info)
        for (ppf, _), rng, part in zip(specs, rngs, parts):
            idx = np.arange(len(ps))
            if ppf is not None and len(idx) > ppf:
                idx = np.sort(rng.choice(idx, size=ppf, replace=False))
            n = idx.size
            part["x"].append(ps.patches[idx])
            part["w"].append(ps.weights[idx])
            part["y"].append(np.full(n, info["label"], np.int64))
            part["g"].append(np.full(n, info["patient_id"], object))
            part["f"].append(np.full(n, len(fields) - 1, np.int64))
    if not fields:
        raise DatasetError("the selected runs hold no complete field")
    out = []
    for part in parts:
        ds = PatchDataset(x=np.concatenate(part["x"]), y=np.concatenate(part["y"]),
                          weights=np.concatenate(part["w"]), groups=np.concatenate(part["g"]),
                          field=np.concatenate(part["f"]), fields=fields)
        missing = set(range(len(task.class_names))) - set(np.unique(ds.y).tolist())
        if missing:
            raise DatasetError(f"no patches of class(es) "
                               f"{[task.class_names[k] for k in missing]} in the selected runs")
        out.append(ds)
    return out
