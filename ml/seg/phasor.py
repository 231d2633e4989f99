"""Spectral phasor analysis and phasor segmentation of hyperspectral SRS stacks.

Definitions (``docs/physics-notes.md``, "Spectral phasor"), computed by PhasorPy's
:func:`phasorpy.phasor.phasor_from_signal` behind this module's input checks: for the
spectrum ``I_k`` of a pixel on ``K`` Raman channels (``k = 0 ... K-1``, increasing Raman
shift) and harmonic ``n``,

* ``mean = sum_k I_k / K``,
* ``G_n = sum_k I_k cos(2 pi n k / K) / sum_k I_k``,
* ``S_n = sum_k I_k sin(2 pi n k / K) / sum_k I_k``.

The phase ``atan2(S, G)`` follows the spectral centre of mass, the modulus the narrowness.
The phasor is linear: the phasor of a mixture is the intensity-weighted mean of the
component phasors, so two-component mixtures lie on a segment and
:func:`phasor_lever_fractions` recovers the fractions (lever rule). ``K >= 2 n + 1`` is
required (fewer channels alias the harmonic). Pixels whose summed intensity is zero have
no phasor: ``G = S = NaN`` there (no warning).

Segmentation (:func:`segment_phasor`, Fu & Xie 2014 pipeline): intensity threshold on the
summed intensity (Otsu by default), ``(G, S)``, a few passes of a NaN-aware 3x3 median filter
on G and S (never on the intensity), then either a Gaussian mixture in the (G, S) plane
(``method="gmm"``, deterministic for a given ``seed``) or hand-placed circular cursors
(``method="cursors"``), then morphological clean-up (:mod:`ml.common.morphology`, on
scikit-image). Output codes are the truth-label codes of
:data:`plans.contract.TRUTH_LABELS`, so a label map compares directly with a truth map:
:data:`BACKGROUND` (0), :data:`CYTOPLASM` (2, cytoplasm or other tissue above the
threshold), :data:`NUCLEUS` (3), :data:`LIPID_DROPLET` (4).

The median filter stays this module's (numpy ``nanmedian``): PhasorPy 0.7's NaN-aware
:func:`phasorpy.phasor.phasor_filter_median` returns a wrong value for windows holding an
even number of valid pixels (its quickselect averages the lower median with an element
that is not the upper one), which every pixel next to the background has.

Measured Dice against the simulator's truth, timings, and the effect of the droplet
trimming and of the percentile-clipped threshold: ``docs/measured/seg-phasor.md``.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from phasorpy.phasor import phasor_from_signal as _pp_phasor_from_signal
from scipy import ndimage

from ml.common import morphology as _morph
from ml.common.dice import dice
from ml.common.errors import MLError
from ml.common.plotting import new_figure, save_png
from plans.contract import TRUTH_LABELS

__all__ = [
    "PhasorError", "PhasorSegmentation", "BACKGROUND", "NUCLEUS", "LIPID_DROPLET",
    "CYTOPLASM", "CLASS_NAMES", "phasor_from_signal", "phasor_of_spectrum",
    "check_raman_axis", "orient", "phasor_lever_fractions", "median_filter_phasor",
    "otsu_threshold", "reference_phases", "segment_phasor", "dice", "phasor_png",
    "labels_png",
]

#: Label code (``TRUTH_LABELS["background"]``): below the intensity threshold (no specimen).
BACKGROUND: int = TRUTH_LABELS["background"]
#: Label code (``TRUTH_LABELS["nucleus"]``): nucleus (phase near the DNA/protein phase).
NUCLEUS: int = TRUTH_LABELS["nucleus"]
#: Label code (``TRUTH_LABELS["lipid_droplet"]``): lipid droplet (phase near the lipid phase).
LIPID_DROPLET: int = TRUTH_LABELS["lipid_droplet"]
#: Label code (``TRUTH_LABELS["cytoplasm"]``): cytoplasm or any other above-threshold pixel.
CYTOPLASM: int = TRUTH_LABELS["cytoplasm"]
#: Contract name of each label code this module writes (code -> name).
CLASS_NAMES: dict[int, str] = {TRUTH_LABELS[n]: n for n in
                               ("background", "nucleus", "lipid_droplet", "cytoplasm")}
_CLASS_COLORS: dict[int, str] = {BACKGROUND: "#808080", NUCLEUS: "#1f77b4",
                                 LIPID_DROPLET: "#ff7f0e", CYTOPLASM: "#2ca02c"}


class PhasorError(MLError):
    """Input unusable for a phasor computation (shape, non-finite values, too few channels,
    bad Raman axis, unknown option)."""


# ----------------------------------------------------------------------------- phasors
def phasor_from_signal(signal: ArrayLike, /, *, axis: int = 0, harmonic: int = 1,
                       ) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                  NDArray[np.float64]]:
    """Mean intensity and spectral phasor coordinates of a signal along ``axis``.

    Parameters
    ----------
    signal : array_like
        Intensities (any unit, e.g. volts), ``K`` samples along ``axis`` in channel order
        (increasing Raman shift, see :func:`orient`). Must be finite.
    axis : int, keyword-only
        Spectral axis (default 0, i.e. ``(K, H, W)`` stacks).
    harmonic : int, keyword-only
        Harmonic ``n >= 1``; requires ``K >= 2 n + 1``.

    Returns
    -------
    mean : ndarray of float64
        ``sum_k I_k / K`` (unit of ``signal``); shape of ``signal`` without ``axis``.
    g, s : ndarray of float64
        ``G_n`` and ``S_n`` (dimensionless); NaN where ``sum_k I_k == 0``.

    Raises
    ------
    PhasorError
        Non-numeric, 0-d or non-finite ``signal``, bad ``axis``, ``harmonic`` not a
        positive integer, or ``K < 2 n + 1``.
    """
    x = np.asarray(signal)
    if x.dtype.kind not in "iufb":
        raise PhasorError(f"signal of dtype {x.dtype}: expected real numbers")
    if x.ndim == 0:
        raise PhasorError("signal is a scalar: expected an array with a spectral axis")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) \
            or not -x.ndim <= axis < x.ndim:
        raise PhasorError(f"axis {axis!r}: expected an integer in [{-x.ndim}, {x.ndim - 1}]")
    if isinstance(harmonic, bool) or not isinstance(harmonic, (int, np.integer)) \
            or harmonic < 1:
        raise PhasorError(f"harmonic {harmonic!r}: expected an integer >= 1")
    x = x.astype(np.float64, copy=False)
    k = x.shape[axis]
    if k < 2 * harmonic + 1:
        raise PhasorError(f"{k} spectral channels for harmonic {harmonic}: need at least "
                          f"2*harmonic+1 = {2 * harmonic + 1}")
    if not np.isfinite(x).all():
        raise PhasorError(f"signal has {int((~np.isfinite(x)).sum())} NaN/inf value(s): "
                          "expected finite intensities (mask or fill them first)")
    mean, g, s = _pp_phasor_from_signal(x, axis=int(axis), harmonic=int(harmonic),
                                        dtype=np.float64)
    mean, g, s = (np.asarray(a, dtype=np.float64) for a in (mean, g, s))
    zero = mean == 0  # no phasor where the summed intensity is zero (PhasorPy: NaN or inf)
    if zero.any():
        g, s = np.where(zero, np.nan, g), np.where(zero, np.nan, s)
    return mean, g, s


def phasor_of_spectrum(spectrum: ArrayLike, /, *, harmonic: int = 1) -> tuple[float, float]:
    """``(G, S)`` of one 1-D spectrum (see :func:`phasor_from_signal`)."""
    sp = np.asarray(spectrum)
    if sp.ndim != 1:
        raise PhasorError(f"spectrum of shape {sp.shape}: expected a 1-D array")
    _, g, s = phasor_from_signal(sp, harmonic=harmonic)
    return float(g), float(s)


def check_raman_axis(raman_cm1: ArrayLike, n_bands: int) -> NDArray[np.float64]:
    """Validate a Raman axis (cm^-1) for a stack with ``n_bands`` spectral channels.

    The axis must be 1-D, finite, of length ``n_bands`` and strictly monotonic. A
    *decreasing* axis (e.g. a scan of increasing pump wavelength, which runs opposite to the
    Raman shift) is allowed here; :func:`orient` reverses axis and stack together so that
    phases are always computed on increasing Raman shift.

    Returns
    -------
    ndarray of float64
        The axis as given (not reordered).
    """
    r = np.asarray(raman_cm1, dtype=np.float64) if np.asarray(raman_cm1).dtype.kind in "iuf" \
        else None
    if r is None or r.ndim != 1:
        raise PhasorError(f"Raman axis {raman_cm1!r}: expected a 1-D array of numbers (cm^-1)")
    if r.size != n_bands:
        raise PhasorError(f"Raman axis of length {r.size} for a stack of {n_bands} spectral "
                          "channels: expected one shift per channel")
    if not np.isfinite(r).all():
        raise PhasorError("Raman axis has NaN/inf values: expected finite shifts (cm^-1)")
    d = np.diff(r)
    if r.size >= 2 and not ((d > 0).all() or (d < 0).all()):
        raise PhasorError("Raman axis is not strictly monotonic: expected strictly increasing "
                          "or strictly decreasing shifts (no repeats, no reversals)")
    return r


def orient(stack: ArrayLike, raman_cm1: ArrayLike, /, *, axis: int = 0,
           ) -> tuple[NDArray, NDArray[np.float64]]:
    """Return ``(stack, raman_cm1)`` with the Raman axis increasing.

    A decreasing axis (pump-wavelength order) is reversed, and ``stack`` is reversed along
    ``axis`` with it; an increasing one is returned unchanged (no copy).
    """
    x = np.asarray(stack)
    if x.ndim == 0 or not -x.ndim <= axis < x.ndim:
        raise PhasorError(f"axis {axis!r} for a stack of shape {x.shape}: expected a valid "
                          "spectral axis")
    r = check_raman_axis(raman_cm1, x.shape[axis])
    if r.size >= 2 and r[1] < r[0]:
        return np.flip(x, axis=axis), r[::-1].copy()
    return x, r


def phasor_lever_fractions(g: ArrayLike, s: ArrayLike, g1: float, s1: float, g2: float,
                           s2: float, /, *, clip: bool = True) -> NDArray[np.float64]:
    """Fraction of component 1 of two-component mixtures (lever rule).

    The point ``P = (g, s)`` is projected on the line through ``P1 = (g1, s1)`` and
    ``P2 = (g2, s2)``: ``f = (P - P2).(P1 - P2) / |P1 - P2|^2``, so ``f = 1`` at ``P1``
    and ``0`` at ``P2``. By phasor linearity ``f`` is the fraction of the summed intensity
    due to component 1 (an *intensity* fraction, not a mass fraction). With ``clip`` (default)
    ``f`` is clipped to [0, 1]. NaN phasors give NaN.
    """
    d = np.array([g1 - g2, s1 - s2], dtype=np.float64)
    n2 = float(d @ d)
    if not math.isfinite(n2) or n2 == 0.0:
        raise PhasorError(f"component phasors ({g1}, {s1}) and ({g2}, {s2}): expected two "
                          "distinct finite points")
    f = ((np.asarray(g, np.float64) - g2) * d[0] + (np.asarray(s, np.float64) - s2) * d[1]) / n2
    return np.clip(f, 0.0, 1.0) if clip else f


def median_filter_phasor(g: ArrayLike, s: ArrayLike, /, *, passes: int = 1, size: int = 3,
                         ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``passes`` passes of a ``size x size`` median filter on the G and S images.

    NaN-aware: NaN pixels (no phasor) stay NaN and are ignored in their neighbours'
    medians; pixels outside the image are ignored too (windows shrink at the edges). The
    intensity is never filtered (common phasor practice). Same filter as PhasorPy's
    ``phasor_filter_median`` except at the image edge (PhasorPy replicates edge pixels) and
    for an even count of valid pixels in a window, where this is the true median (the
    mean of the two middle values) -- see the module docstring.
    """
    G = np.array(g, dtype=np.float64)
    S = np.array(s, dtype=np.float64)
    if G.ndim != 2 or G.shape != S.shape:
        raise PhasorError(f"g {G.shape} and s {S.shape}: expected two 2-D images of one shape")
    if isinstance(passes, bool) or not isinstance(passes, (int, np.integer)) or passes < 0:
        raise PhasorError(f"passes {passes!r}: expected an integer >= 0")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1 \
            or size % 2 == 0:
        raise PhasorError(f"size {size!r}: expected an odd integer >= 1")
    valid = np.isfinite(G) & np.isfinite(S)
    if passes == 0 or size == 1 or not valid.any():
        return G, S
    h = size // 2
    for _ in range(passes):
        out = []
        for img in (G, S):
            pad = np.pad(np.where(valid, img, np.nan), h, constant_values=np.nan)
            win = np.lib.stride_tricks.sliding_window_view(pad, (size, size))[valid]
            res = np.full_like(img, np.nan)
            res[valid] = np.nanmedian(win.reshape(win.shape[0], -1), axis=1)
            out.append(res)
        G, S = out
    return G, S


def otsu_threshold(values: ArrayLike, /, *, bins: int = 256,
                   clip_percentile: float | None = None) -> float:
    """Otsu's threshold of the finite ``values`` (unit of ``values``).

    :func:`ml.common.morphology.otsu_threshold` (scikit-image's Otsu on a ``bins``-bin
    histogram): ``clip_percentile`` (0-100) clips values above that percentile first, so
    that a few very bright objects (lipid droplets) cannot pull the threshold above the
    dimmer tissue (a plain Otsu split then separates droplets from everything else).
    Pixels ``> threshold`` are foreground; the threshold is the upper edge of the lower
    class's last bin. Constant input returns that constant.

    Raises
    ------
    PhasorError
        No finite value, ``clip_percentile`` outside (0, 100], ``bins`` < 2.
    """
    try:
        return _morph.otsu_threshold(values, bins=bins, clip_percentile=clip_percentile)
    except _morph.MorphologyError as exc:
        raise PhasorError(str(exc)) from None


def reference_phases(raman_cm1: ArrayLike, /, *, harmonic: int = 1,
                     ) -> dict[str, tuple[float, float]]:
    """Phasors ``(G, S)`` of the pure species spectra of :mod:`simulators.spectra` (with the
    default instrument line width) sampled on the increasing ``raman_cm1`` axis."""
    from simulators.spectra import SPECIES, species_spectrum

    r = np.asarray(raman_cm1, dtype=np.float64)
    return {sp: phasor_of_spectrum(species_spectrum(sp, r), harmonic=harmonic)
            for sp in SPECIES}


# ----------------------------------------------------------------------------- segmentation
@dataclasses.dataclass
class PhasorSegmentation:
    """Result of :func:`segment_phasor`.

    ``labels``: int array (H, W) with codes :data:`BACKGROUND`, :data:`NUCLEUS`,
    :data:`LIPID_DROPLET`, :data:`CYTOPLASM`; ``mean``: mean intensity per pixel (unit of
    the stack); ``g``, ``s``: median-filtered phasor (NaN below the threshold);
    ``threshold``: the threshold applied to ``mean``; ``centres``: (C, 2) cluster means
    (gmm) or cursor centres in (G, S); ``classes``: the label code of each centre;
    ``references``: the reference phasors used to assign classes (gmm mode).
    """

    labels: NDArray[np.int64]
    mean: NDArray[np.float64]
    g: NDArray[np.float64]
    s: NDArray[np.float64]
    threshold: float
    centres: NDArray[np.float64]
    classes: NDArray[np.int64]
    harmonic: int = 1
    references: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)

    def mask(self, code: int) -> NDArray[np.bool_]:
        """Boolean mask of one label code."""
        return self.labels == code


def _phase_dist(a: float, b: float) -> float:
    d = (a - b) % (2 * np.pi)
    return min(d, 2 * np.pi - d)


def _assign_classes(centres: NDArray, refs: dict[str, tuple[float, float]],
                    nucleus_species: str) -> NDArray[np.int64]:
    phase = np.arctan2(centres[:, 1], centres[:, 0])
    ph_lip = math.atan2(refs["lipid"][1], refs["lipid"][0])
    ph_nuc = math.atan2(refs[nucleus_species][1], refs[nucleus_species][0])
    classes = np.full(len(centres), CYTOPLASM, dtype=np.int64)
    i_lip = int(np.argmin([_phase_dist(p, ph_lip) for p in phase]))
    classes[i_lip] = LIPID_DROPLET
    rest = [i for i in range(len(centres)) if i != i_lip]
    if rest:
        i_nuc = rest[int(np.argmin([_phase_dist(phase[i], ph_nuc) for i in rest]))]
        classes[i_nuc] = NUCLEUS
    return classes


def _droplet_level(lip: NDArray[np.bool_], mean: NDArray[np.float64],
                   cyto: NDArray[np.bool_], level: float) -> NDArray[np.bool_]:
    """Keep the pixels of each droplet object brighter than ``bg + level (peak - bg)``
    (``bg``: median intensity of the cytoplasm pixels, ``peak``: the object's maximum)."""
    bg = float(np.median(mean[cyto])) if cyto.any() else float(np.min(mean[lip]))
    lab, n = ndimage.label(lip)
    peak = np.asarray(ndimage.maximum(mean, lab, index=np.arange(1, n + 1)), dtype=np.float64)
    cut = np.concatenate([[np.inf], bg + level * (peak - bg)])
    return lip & (mean >= cut[lab])


def segment_phasor(stack: ArrayLike, raman_cm1: ArrayLike, /, *, harmonic: int = 1,
                   threshold: float | None = None, threshold_clip_percentile: float = 95.0,
                   median_passes: int = 2,
                   method: str = "gmm", n_components: int = 3,
                   cursors: Sequence[tuple[float, float, float, int]] | None = None,
                   lipid_cm1: float = 2850.0, nucleus_species: str = "dna", seed: int = 0,
                   min_nucleus_px: int = 30, min_droplet_px: int = 2,
                   opening_radius: int = 1, closing_radius: int = 1,
                   droplet_level: float | None = 0.5, max_fit_px: int = 50_000,
                   ) -> PhasorSegmentation:
    """Segment a hyperspectral SRS stack into nucleus, lipid droplets and cytoplasm.

    Parameters
    ----------
    stack : array_like, shape (K, H, W)
        Background-subtracted, power-normalised intensities (e.g. volts), one frame per
        Raman channel. Must be finite.
    raman_cm1 : array_like, shape (K,)
        Raman shift of each channel (cm^-1), strictly monotonic; a decreasing axis is
        reversed together with the stack (:func:`orient`).
    harmonic : int, keyword-only
        Phasor harmonic (1 for ~250-300 cm^-1 windows).
    threshold : float or None, keyword-only
        Pixels with mean intensity ``> threshold`` (unit of the stack) are specimen. None:
        Otsu's threshold of the mean image clipped at its ``threshold_clip_percentile``
        percentile (:func:`otsu_threshold`; default 95, so that bright lipid droplets do
        not raise the threshold above the cytoplasm).
    median_passes : int, keyword-only
        Passes of the NaN-aware 3x3 median filter on G and S.
    method : {"gmm", "cursors"}, keyword-only
        ``"gmm"``: a ``n_components`` Gaussian mixture (full covariances,
        ``random_state=seed``) fitted to the (G, S) of the above-threshold pixels (at most
        ``max_fit_px`` of them, drawn with ``seed``); each pixel takes its most probable
        cluster. Clusters are named by phase: the cluster whose mean phase is nearest the
        phase of the pure lipid spectrum (``species_spectrum("lipid", raman_cm1)``) is
        :data:`LIPID_DROPLET`; of the others, the one nearest the phase of
        ``nucleus_species`` (default ``"dna"``) is :data:`NUCLEUS`; the rest are
        :data:`CYTOPLASM`. ``"cursors"``: each pixel takes the label of the first cursor
        ``(g, s, radius, label)`` whose circle contains its phasor, else :data:`CYTOPLASM`.
    lipid_cm1 : float, keyword-only
        Lipid CH2 band position (cm^-1); must lie within the Raman axis (sanity check that
        the stack covers the CH region).
    nucleus_species : str, keyword-only
        Reference species for the nucleus phase (``"dna"`` or ``"protein"``).
    seed : int, keyword-only
        Seed of the mixture fit and subsampling: the result is fully deterministic.
    min_nucleus_px, min_droplet_px : int, keyword-only
        Nucleus / droplet objects (4-connected) smaller than this many pixels become
        cytoplasm.
    opening_radius, closing_radius : int, keyword-only
        Radii (pixels) of the binary opening then closing applied to the nucleus mask
        before its holes are filled (0 disables).
    droplet_level : float or None, keyword-only
        Droplet edges at a fraction of each droplet's contrast: of the pixels of each
        connected lipid-class object, only those with ``mean >= bg + droplet_level *
        (peak - bg)`` are kept (``bg``: median mean intensity of the cytoplasm-class
        pixels, ``peak``: the object's brightest pixel). The median-filtered phasor spreads
        droplets over their PSF-blurred surroundings; 0.5 (half maximum) puts the edge
        near the 50 % partial-volume edge of the truth. None: no trimming.
    max_fit_px : int, keyword-only
        Cap on the pixels used to fit the mixture.

    Returns
    -------
    PhasorSegmentation
    """
    x = np.asarray(stack)
    if x.ndim != 3:
        raise PhasorError(f"stack of shape {x.shape}: expected (K, H, W)")
    x, r = orient(x, raman_cm1)
    if not r[0] <= lipid_cm1 <= r[-1]:
        raise PhasorError(f"lipid band {lipid_cm1:g} cm^-1 outside the Raman axis "
                          f"[{r[0]:g}, {r[-1]:g}] cm^-1: expected a CH-region stack")
    if method not in ("gmm", "cursors"):
        raise PhasorError(f"method {method!r}: expected 'gmm' or 'cursors'")
    mean, g, s = phasor_from_signal(x, axis=0, harmonic=harmonic)
    thr = otsu_threshold(mean, clip_percentile=threshold_clip_percentile) \
        if threshold is None else float(threshold)
    fg = mean > thr
    g = np.where(fg, g, np.nan)
    s = np.where(fg, s, np.nan)
    g, s = median_filter_phasor(g, s, passes=median_passes)
    valid = fg & np.isfinite(g) & np.isfinite(s)
    raw = np.full(mean.shape, BACKGROUND, dtype=np.int64)
    refs: dict[str, tuple[float, float]] = {}
    pts = np.stack([g[valid], s[valid]], axis=1)
    if method == "gmm":
        if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) \
                or n_components < 2:
            raise PhasorError(f"n_components {n_components!r}: expected an integer >= 2")
        if nucleus_species not in ("dna", "protein"):
            raise PhasorError(f"nucleus_species {nucleus_species!r}: expected 'dna' or "
                              "'protein'")
        if pts.shape[0] < 10 * n_components:
            raise PhasorError(f"{pts.shape[0]} pixels above the threshold {thr:g}: need at "
                              f"least {10 * n_components} for a {n_components}-component "
                              "mixture (lower the threshold)")
        from sklearn.mixture import GaussianMixture

        rng = np.random.default_rng(seed)
        fit = pts if pts.shape[0] <= max_fit_px else \
            pts[np.sort(rng.choice(pts.shape[0], max_fit_px, replace=False))]
        gm = GaussianMixture(n_components=n_components, covariance_type="full",
                             random_state=seed, n_init=1, reg_covar=1e-6)
        gm.fit(fit)
        centres = np.asarray(gm.means_, dtype=np.float64)
        refs = reference_phases(r, harmonic=harmonic)
        classes = _assign_classes(centres, refs, nucleus_species)
        raw[valid] = classes[gm.predict(pts)]
    else:
        if not cursors:
            raise PhasorError("method 'cursors' needs cursors=[(g, s, radius, label), ...]")
        cur = []
        for c in cursors:
            if len(c) != 4 or c[3] not in (NUCLEUS, LIPID_DROPLET, CYTOPLASM) or not c[2] > 0:
                raise PhasorError(f"cursor {c!r}: expected (g, s, radius > 0, label) with label "
                                  f"{NUCLEUS}, {LIPID_DROPLET} or {CYTOPLASM}")
            cur.append((float(c[0]), float(c[1]), float(c[2]), int(c[3])))
        centres = np.array([[c[0], c[1]] for c in cur], dtype=np.float64)
        classes = np.array([c[3] for c in cur], dtype=np.int64)
        lab = np.full(pts.shape[0], CYTOPLASM, dtype=np.int64)
        done = np.zeros(pts.shape[0], dtype=bool)
        for cg, cs, rad, code in cur:
            hit = ~done & ((pts[:, 0] - cg) ** 2 + (pts[:, 1] - cs) ** 2 <= rad * rad)
            lab[hit] = code
            done |= hit
        raw[valid] = lab
    # morphological clean-up
    nuc = raw == NUCLEUS
    if opening_radius > 0:
        nuc = ndimage.binary_opening(nuc, structure=_morph.disk(opening_radius))
    if closing_radius > 0:
        nuc = ndimage.binary_closing(nuc, structure=_morph.disk(closing_radius),
                                     border_value=0)
    nuc = ndimage.binary_fill_holes(_morph.remove_small_objects(nuc & fg, min_nucleus_px)) & fg
    lip = raw == LIPID_DROPLET
    if droplet_level is not None and lip.any():
        lip = _droplet_level(lip, mean, raw == CYTOPLASM, droplet_level)
    lip = _morph.remove_small_objects(lip, min_droplet_px)
    labels = np.where(fg, CYTOPLASM, BACKGROUND).astype(np.int64)
    labels[nuc] = NUCLEUS
    labels[lip] = LIPID_DROPLET
    return PhasorSegmentation(labels=labels, mean=mean, g=g, s=s, threshold=thr,
                              centres=centres, classes=classes, harmonic=harmonic,
                              references=refs)


# ----------------------------------------------------------------------------- figures
def phasor_png(path: str | os.PathLike, g: ArrayLike, s: ArrayLike, /, *,
               labels: ArrayLike | None = None, centres: ArrayLike | None = None,
               classes: ArrayLike | None = None,
               cursors: Sequence[tuple[float, float, float, int]] | None = None,
               references: dict[str, tuple[float, float]] | None = None,
               title: str = "spectral phasor", bins: int = 200) -> Path:
    """Write the 2-D (G, S) histogram of the finite phasors as a PNG (atomically).

    Spectral phasors lie inside the unit circle, which is drawn. With ``labels`` (same
    shape as ``g``), the non-background pixels of each class are also drawn as a faint
    scatter in the class colour; ``centres`` (C, 2) are marked with ``classes`` colours,
    ``cursors`` ``(g, s, radius, label)`` drawn as circles, ``references`` (species ->
    (G, S)) as labelled crosses. Returns the path.
    """
    G = np.asarray(g, dtype=np.float64)
    S = np.asarray(s, dtype=np.float64)
    if G.shape != S.shape:
        raise PhasorError(f"g {G.shape} and s {S.shape}: expected equal shapes")
    ok = np.isfinite(G) & np.isfinite(S)
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Circle

    fig = new_figure((5.5, 5.0), dpi=100)
    ax = fig.add_subplot()
    if ok.any():
        h, xe, ye = np.histogram2d(G[ok], S[ok], bins=bins, range=[[-1, 1], [-1, 1]])
        hm = np.ma.masked_equal(h.T, 0)
        ax.imshow(hm, origin="lower", extent=(-1, 1, -1, 1), cmap="magma_r",
                  norm=LogNorm(vmin=1, vmax=max(2.0, float(h.max()))), interpolation="nearest")
    if labels is not None:
        L = np.asarray(labels)
        if L.shape != G.shape:
            raise PhasorError(f"labels {L.shape} and g {G.shape}: expected equal shapes")
        for code in (NUCLEUS, LIPID_DROPLET, CYTOPLASM):
            m = ok & (L == code)
            if m.any():
                idx = np.flatnonzero(m)[:: max(1, int(m.sum()) // 3000)]
                ax.scatter(G.ravel()[idx], S.ravel()[idx], s=1, alpha=0.15,
                           color=_CLASS_COLORS[code], label=CLASS_NAMES[code])
    t = np.linspace(0, 2 * np.pi, 361)
    ax.plot(np.cos(t), np.sin(t), color="k", lw=0.8)
    ax.axhline(0, color="0.7", lw=0.5)
    ax.axvline(0, color="0.7", lw=0.5)
    if centres is not None:
        C = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
        cl = np.asarray(classes) if classes is not None else np.full(len(C), CYTOPLASM)
        for (cg, cs), code in zip(C, cl):
            ax.plot(cg, cs, marker="o", ms=9, mec="k", color=_CLASS_COLORS.get(int(code), "w"))
    for cg, cs, rad, code in cursors or ():
        ax.add_patch(Circle((cg, cs), rad, fill=False, lw=1.5,
                            color=_CLASS_COLORS.get(int(code), "k")))
    for name, (rg, rs) in (references or {}).items():
        if math.isfinite(rg) and math.isfinite(rs):
            ax.plot(rg, rs, marker="x", color="k")
            ax.annotate(name, (rg, rs), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-1.05, 1.05)
    ax.set_aspect("equal")
    ax.set_xlabel("G")
    ax.set_ylabel("S")
    ax.set_title(title)
    if labels is not None and ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=7, markerscale=6)
    return save_png(fig, path)


def labels_png(path: str | os.PathLike, intensity: ArrayLike, labels: ArrayLike, /, *,
               alpha: float = 0.45, title: str = "phasor segmentation") -> Path:
    """Write the grey intensity image with the label classes overlaid in colour (PNG,
    atomically). Returns the path."""
    from matplotlib.colors import to_rgb

    im = np.asarray(intensity, dtype=np.float64)
    L = np.asarray(labels)
    if im.ndim != 2 or L.shape != im.shape:
        raise PhasorError(f"intensity {im.shape} and labels {L.shape}: expected two 2-D "
                          "images of one shape")
    fin = np.isfinite(im)
    lo, hi = (np.percentile(im[fin], [1, 99.5]) if fin.any() else (0.0, 1.0))
    grey = np.clip((np.where(fin, im, lo) - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    for code in (NUCLEUS, LIPID_DROPLET, CYTOPLASM):
        m = L == code
        rgb[m] = (1 - alpha) * rgb[m] + alpha * np.array(to_rgb(_CLASS_COLORS[code]))
    fig = new_figure((5.0, 5.0), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(rgb, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title)
    return save_png(fig, path)
