"""Lipid-droplet quantification of a cohort (``srash quantify``): per tubule, per group.

Plain functions over fields that are already loaded (:class:`QuantField`: a scan's start
document, the field's index and position, its three channels in reference units). The
command line selects the runs, reads their tiles (:func:`ml.io.runs.run_tiles`), turns each
into a :class:`QuantField` (:func:`quant_field`) and calls :func:`quantify_cohort`, which

* quantifies every field (:func:`ml.ldquant.quantify.quantify_field`; a field without a
  tubule is listed and skipped) and, given a ``truth`` callable (e.g. the simulator's truth
  re-rendered for the field), scores the tubule segmentation against it
  (:func:`ml.ldquant.tubules.tubule_dice`);
* groups the tubules by the scan's phenotype (:func:`group_of`: normal vs NOA, SPT vs SPG)
  and runs the paper's four comparisons (:data:`COMPARISONS`,
  :func:`ml.ldquant.stats.compare_groups`);
* writes ``tubules.csv`` (or ``.parquet``), ``ld_quantification.png``, the overlays of the
  first fields and ``summary.json`` into the report folder, and, given a ``publish``
  callable (a document sink), an analysis run with a ``tubules`` and a ``tests`` stream.

Progress: the optional ``progress(stage, record)`` is called once per field processed
(``stage`` ``"field"``, ``record`` with ``scan_uid`` and ``field``).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from ml.io.frames import ReadFaults
from ml.ldquant._base import QuantError
from plans.contract import ANALYSIS_KEY, LD_QUANT_ANALYSIS, LINK_SCANS

__all__ = ["COMPARISONS", "PAPER_N", "Progress", "TruthFn", "Publish", "QuantField",
           "QuantSettings",
           "group_of", "quant_field", "common_pixel_um", "group_tests", "group_summary",
           "resampling_study",
           "dice_summary", "quantify_cohort"]

#: (index, group a, group b, alternative for a vs b) in the paper's order (panels J-M).
COMPARISONS: tuple[tuple[str, str, str, str], ...] = (
    ("ld_mean_intensity", "normal", "NOA", "less"),
    ("ld_area_percent", "normal", "NOA", "greater"),
    ("ld_mean_intensity", "SPT", "SPG", "two-sided"),
    ("ld_area_percent", "SPT", "SPG", "greater"),
)

_SUBTYPE = {"NOA-SPT": "SPT", "NOA-SPG": "SPG"}

#: ``progress(stage, record)``: called once per field (module doc).
Progress = Callable[[str, Mapping[str, Any]], None]
#: ``truth(field)``: the truth tubule instance map ``(H, W)`` of a field, or None.
TruthFn = Callable[["QuantField"], "NDArray[np.integer] | None"]
#: ``publish(name, doc)``: a sink of bluesky documents (e.g. an analysis-run writer).
Publish = Callable[[str, dict], Any]


#: Tubules per group in the paper's quantitative analysis (Fig. 2J-M): 34 normal, 27 NOA =
#: 14 SPT + 13 SPG; SCO was not part of it (docs/ld_quantification.md). The resampling
#: study repeats each comparison at these n.
PAPER_N: dict[tuple[str, str], tuple[int, int]] = {("normal", "NOA"): (34, 27),
                                                    ("SPT", "SPG"): (14, 13)}


def group_of(phenotype: str | None) -> tuple[str | None, str | None]:
    """(normal-vs-NOA group, subtype group) of a scan's phenotype (None = not in one).

    As in the paper's quantitative analysis, NOA means the maturation arrests (SPT, SPG);
    Sertoli-cell-only tubules form their own group ``"SCO"``, reported but not tested."""
    if phenotype == "normal":
        return "normal", None
    if phenotype == "NOA-SCO":
        return "SCO", None
    if phenotype and phenotype.startswith("NOA"):
        return "NOA", _SUBTYPE.get(phenotype)
    return None, None


@dataclasses.dataclass(frozen=True)
class QuantField:
    """One field ready to quantify.

    Attributes
    ----------
    scan : the scan's start document (``uid``, and ``sample_id``, ``patient_id``,
        ``phenotype``, ``diagnosis`` where known).
    index : the field's index in its scan.
    channels : ``(3, H, W)`` float32 in reference units: lipid (2850 cm^-1 / pure lipid),
        protein (2930 cm^-1 / pure lipid), SHG / dense collagen
        (:func:`ml.io.composite.field_channels`).
    x_um, y_um : the field's centre (stage, um).
    pixel_um : pixel size (um).
    """

    scan: Mapping[str, Any]
    index: int
    channels: NDArray[np.float32]
    x_um: float
    y_um: float
    pixel_um: float


def quant_field(start: Mapping[str, Any], tile: Any) -> QuantField:
    """The :class:`QuantField` of a tile (:class:`ml.io.runs.Tile`) of the scan whose start
    document is ``start``: dark levels subtracted and powers normalised with the run's
    calibration record (:class:`ml.io.composite.CalibrationError` without one)."""
    from ml.io.composite import Calibration, field_channels

    cal = Calibration.from_dict(start.get("calibration"))
    ch = field_channels(tile.data[0], tile.data[1], tile.data[2], calibration=cal,
                        shifts_cm1=tile.shifts_cm1, pump_mw=tile.pump_mw,
                        stokes_mw=tile.stokes_mw)
    return QuantField(scan=start, index=int(tile.index), channels=ch, x_um=float(tile.x_um),
                      y_um=float(tile.y_um), pixel_um=float(tile.pixel_um))


def common_pixel_um(pixels: Iterable[tuple[str, float]]) -> float:
    """The one pixel size (um, rounded to 1e-4) of ``(scan uid, pixel_um)`` pairs, one per
    field; :class:`QuantError` when they mix sizes (droplet areas and thresholds would not
    be comparable) or there is none."""
    sizes = {round(float(p), 4): uid[:8] for uid, p in pixels}
    if len(sizes) > 1:
        raise QuantError("the selected runs mix pixel sizes (" + ", ".join(
            f"{p} um in run {u}" for p, u in sorted(sizes.items())) + "): LD areas and "
            "thresholds are not comparable across them; select runs of one pixel size")
    if not sizes:
        raise QuantError("the selected runs have no complete fields")
    return float(next(iter(sizes)))


@dataclasses.dataclass(frozen=True)
class QuantSettings:
    """Settings of :func:`quantify_cohort`.

    Attributes
    ----------
    ld_threshold : lipid-droplet threshold on the lipid channel (pure-lipid units, > 0);
        None: :data:`ml.ldquant.droplets.DEFAULT_LD_THRESHOLD`.
    table_format : ``"csv"`` or ``"parquet"``.
    overlays : overlay PNGs of the first this many quantified fields (>= 0).
    query : the selection the fields came from (recorded in the analysis run).
    resample : replicates of the resampling study at the paper's n (:data:`PAPER_N`,
        :func:`resampling_study`); 0 = off.
    seed : seed of the resampling draws.
    """

    ld_threshold: float | None = None
    table_format: str = "csv"
    overlays: int = 4
    query: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    resample: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.ld_threshold is not None and not self.ld_threshold > 0:
            raise QuantError(f"ld_threshold {self.ld_threshold!r}: expected a positive "
                             "lipid level in pure-lipid units")
        if self.table_format not in ("csv", "parquet"):
            raise QuantError(f"table_format {self.table_format!r}: expected 'csv' or "
                             "'parquet'")
        if self.overlays < 0:
            raise QuantError(f"overlays {self.overlays}: expected a count >= 0")
        if self.resample < 0:
            raise QuantError(f"resample {self.resample}: expected a count >= 0 (0 = off)")


# ---------------------------------------------------------------------------- statistics
def _values(rows: Sequence[Mapping[str, Any]], index: str, key: str, group: str
            ) -> NDArray[np.float64]:
    v = np.array([r[index] for r in rows if r[key] == group], float)
    return v[np.isfinite(v)]


def group_tests(rows: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list]:
    """Every comparison of :data:`COMPARISONS` over the tubule rows (keys ``group``,
    ``subtype`` and the indexes).

    Returns
    -------
    tests : list of dict
        One per comparison, in order: index, groups, alternative, ``n_a_all`` / ``n_b_all``
        (finite values before outliers are dropped) and the test's result, or ``error``
        when a group has too few tubules.
    panels : list of (values_a, values_b, GroupTest)
        The raw values and result of each comparison that ran
        (:func:`ml.ldquant.stats.quant_figure_png`).
    """
    from ml.ldquant.stats import StatsError, compare_groups

    tests, panels = [], []
    for index, a, b, alt in COMPARISONS:
        key = "group" if a == "normal" else "subtype"
        va, vb = _values(rows, index, key, a), _values(rows, index, key, b)
        entry: dict[str, Any] = {"index": index, "group_a": a, "group_b": b,
                                 "alternative": alt, "n_a_all": int(va.size),
                                 "n_b_all": int(vb.size)}
        try:
            res = compare_groups(va, vb, index=index, names=(a, b), alternative=alt)
        except StatsError as exc:
            entry["error"] = str(exc)
            tests.append(entry)
            continue
        entry.update(res.to_dict())
        tests.append(entry)
        panels.append((va, vb, res))  # raw values: the figure applies the same IQR rule
    return tests, panels


def resampling_study(rows: Sequence[Mapping[str, Any]], *, reps: int = 1000,
                     seed: int = 0) -> list[dict[str, Any]]:
    """Each comparison of :data:`COMPARISONS` repeated ``reps`` times on tubules drawn with
    replacement at the paper's n (:data:`PAPER_N`;
    :func:`ml.ldquant.stats.resample_comparison`): the fraction of replicates significant,
    and the spread of p and Cohen's d. A comparison whose groups are empty reports
    ``error``."""
    from ml.ldquant.stats import StatsError, resample_comparison

    out = []
    for i, (index, a, b, alt) in enumerate(COMPARISONS):
        key = "group" if a == "normal" else "subtype"
        va, vb = _values(rows, index, key, a), _values(rows, index, key, b)
        n_a, n_b = PAPER_N[(a, b)]
        try:
            res = resample_comparison(va, vb, n_a=n_a, n_b=n_b, reps=reps, index=index,
                                      names=(a, b), alternative=alt, rng=seed + i)
        except StatsError as exc:
            out.append({"index": index, "group_a": a, "group_b": b, "alternative": alt,
                        "n_a": n_a, "n_b": n_b, "error": str(exc)})
            continue
        out.append(res.summary())
    return out


def group_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per group and subtype (in that order, each sorted by name): tubule and patient
    counts, tubules with droplets, median LD mean intensity (None without droplets) and
    median LD area percentage."""
    per_group: dict[str, Any] = {}
    for key in ("group", "subtype"):
        for g in sorted({r[key] for r in rows if r[key]}):
            sel = [r for r in rows if r[key] == g]
            inten = np.array([r["ld_mean_intensity"] for r in sel], float)
            area = np.array([r["ld_area_percent"] for r in sel], float)
            per_group[g] = {
                "tubules": len(sel), "patients": len({r["patient_id"] for r in sel}),
                "tubules_with_lds": int(np.isfinite(inten).sum()),
                "median_ld_mean_intensity": float(np.nanmedian(inten))
                if np.isfinite(inten).any() else None,
                "median_ld_area_percent": float(np.median(area))}
    return per_group


def dice_summary(dice_rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Mean / median / min Dice of the truth tubules, and the mean per phenotype; None
    without rows."""
    if not dice_rows:
        return None
    d = np.array([r["dice"] for r in dice_rows], float)
    return {"truth_tubules": int(d.size), "mean_dice": float(d.mean()),
            "median_dice": float(np.median(d)), "min_dice": float(d.min()),
            "per_phenotype": {ph: float(np.mean([r["dice"] for r in dice_rows
                                                 if r["phenotype"] == ph]))
                              for ph in sorted({r["phenotype"] for r in dice_rows})}}


# ---------------------------------------------------------------------------- workflow
def quantify_cohort(fields: Iterable[QuantField], *, scan_uids: Sequence[str],
                    pixel_um: float, report_dir: str | Path,
                    settings: QuantSettings | None = None, n_fields: int | None = None,
                    truth: TruthFn | None = None, publish: Publish | None = None,
                    faults: ReadFaults | None = None, progress: Progress | None = None,
                    clock_start: float | None = None) -> dict[str, Any]:
    """Quantify lipid droplets per tubule over fields, compare the groups, write the outputs.

    Parameters
    ----------
    fields : iterable of QuantField
        Consumed once, one field at a time.
    scan_uids : sequence of str, keyword-only
        The selected scans (recorded; the analysis run links to them).
    pixel_um : float, keyword-only
        The fields' common pixel size (um; :func:`common_pixel_um`).
    report_dir : path, keyword-only
        Folder of the table, ``summary.json``, the figure and the overlays.
    settings : QuantSettings, keyword-only
    n_fields : int, keyword-only
        Fields selected (the error message when none has a tubule); default: those given.
    truth : callable, keyword-only
        ``truth(field)`` -> truth tubule instance map or None (no truth for that field).
    publish : callable, keyword-only
        Document sink of the analysis run; None: no run is written.
    faults : ReadFaults, keyword-only
        The reader's faults, summarised at the end (``skipped_runs``, ``bad_frames``,
        ``incomplete_runs``, ``fields_unreadable``).
    progress : callable, keyword-only
        ``progress("field", record)`` once per field.
    clock_start : float, keyword-only
        ``time.perf_counter()`` at the command's start (``elapsed_s``); default this call.

    Returns
    -------
    dict
        The summary as written to ``summary.json``, plus ``"summary"`` (its path).

    Raises
    ------
    QuantError
        No tubule in any field.
    """
    from ml.common.fileio import write_json
    from ml.ldquant.quantify import quant_overlay_png, quantify_field
    from ml.ldquant.tubules import tubule_dice

    t0 = time.perf_counter() if clock_start is None else clock_start
    settings = settings if settings is not None else QuantSettings()
    faults = faults if faults is not None else ReadFaults()
    out = Path(report_dir)
    rows: list[dict[str, Any]] = []
    dice_rows: list[dict[str, Any]] = []
    overlays: list[str] = []
    empty: list[dict[str, Any]] = []
    seen = 0
    for f in fields:
        seen += 1
        start = f.scan
        lip, pro, shg = f.channels[0], f.channels[1], f.channels[2]
        try:
            fq = quantify_field(lip, pro, shg, pixel_um=pixel_um,
                                ld_threshold=settings.ld_threshold)
        except QuantError as exc:  # e.g. a field of interstitium only: keep going
            empty.append({"scan_uid": start["uid"], "field": f.index, "reason": str(exc)})
            if progress is not None:
                progress("field", {"scan_uid": start["uid"], "field": f.index})
            continue
        groups = group_of(start.get("phenotype"))
        base = {"scan_uid": start["uid"], "sample_id": start.get("sample_id"),
                "patient_id": start.get("patient_id"), "phenotype": start.get("phenotype"),
                "diagnosis": start.get("diagnosis"), "group": groups[0],
                "subtype": groups[1], "field": f.index}
        rows += [{**base, **r} for r in fq.rows]
        inst = None if truth is None else truth(f)
        if inst is not None:
            dice_rows += [{**base, **d} for d in tubule_dice(fq.tubules, inst,
                                                              pixel_um=pixel_um)]
        if len(overlays) < settings.overlays:
            overlays.append(str(quant_overlay_png(
                out / f"overlay_{start['uid'][:8]}_f{f.index}.png", lip, pro, shg, fq)))
        if progress is not None:
            progress("field", {"scan_uid": start["uid"], "field": f.index})
    if not rows:
        bad = len({(b["uid"], b["field"]) for b in faults.bad_frames})
        raise QuantError(f"no tubules found in the {seen if n_fields is None else n_fields} "
                         f"field(s) of the {len(scan_uids)} selected run(s)"
                         + (f" ({bad} skipped: unreadable frame files)" if bad else "")
                         + ": nothing to quantify")
    tests, panels = group_tests(rows)
    summary: dict[str, Any] = {
        "runs": len(scan_uids), "scan_uids": list(scan_uids),
        "fields": len({(r["scan_uid"], r["field"]) for r in rows}),
        "tubules": len(rows), "pixel_um": pixel_um, "groups": group_summary(rows),
        "tests": tests,
        "resampling": resampling_study(rows, reps=settings.resample, seed=settings.seed)
        if settings.resample else None,
        "tubule_segmentation_vs_truth": dice_summary(dice_rows),
        "fields_without_tubules": empty, **faults.summary(),
        "fields_unreadable": len({(b["uid"], b["field"]) for b in faults.bad_frames})}
    summary["table"] = _write_table(out, rows, settings.table_format)
    summary["images"] = {"figure": str(_figure_png(out, panels)) if panels else None,
                         "overlays": overlays}
    summary["analysis_uid"] = None if publish is None else _store(
        publish, scan_uids, rows, tests, settings)
    summary["elapsed_s"] = round(time.perf_counter() - t0, 1)
    summary["summary"] = str(write_json(out / "summary.json", summary))
    return summary


def _write_table(out: Path, rows: list[dict[str, Any]], fmt: str) -> str:
    import pandas as pd

    from ml.common.fileio import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows)
    path = out / f"tubules.{fmt}"
    if fmt == "csv":
        atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
    else:
        atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    return str(path)


def _figure_png(out: Path, panels: list) -> Path:
    from ml.ldquant.stats import quant_figure_png

    return quant_figure_png(out / "ld_quantification.png", panels,
                            title="Lipid droplets per seminiferous tubule")


def _store(publish: Publish, scan_uids: Sequence[str], rows: list[dict[str, Any]],
           tests: list[dict[str, Any]], settings: QuantSettings) -> str:
    """The analysis run: a ``tubules`` stream (one event per tubule) and a ``tests`` stream
    (one event per test that ran)."""
    from ml.io.publish import publish_run

    num = {"source": "srash quantify", "dtype": "number", "shape": []}
    text = {"source": "srash quantify", "dtype": "string", "shape": []}
    tub_keys = {"scan_uid": text, "sample_id": text, "phenotype": text, "field": num,
                "tubule_id": num, "area_um2": num, "ld_count": num, "ld_area_percent": num,
                "ld_mean_intensity": num}
    tub_rows = [{k: (r[k] if r[k] is not None else "") if tub_keys[k] is text
                 else float(r[k]) for k in tub_keys} for r in rows]
    test_keys = {"index": text, "group_a": text, "group_b": text, "test": text,
                 "alternative": text, "n_a": num, "n_b": num, "statistic": num,
                 "p_value": num}
    nan = float("nan")
    test_rows = [{k: (t.get(k) or "") if test_keys[k] is text
                  else (nan if t.get(k) is None else float(t[k])) for k in test_keys}
                 for t in tests if "error" not in t]
    streams = {"tubules": (tub_keys, tub_rows)}
    if test_rows:
        streams["tests"] = (test_keys, test_rows)
    return publish_run(publish,
                       {ANALYSIS_KEY: LD_QUANT_ANALYSIS, "plan_name": "srash-quantify",
                        LINK_SCANS: list(scan_uids), "query": dict(settings.query),
                        "ld_threshold": settings.ld_threshold}, streams)
