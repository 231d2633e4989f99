"""Compositing helpers of the testis renderer: interstitial objects (vessels, red blood
cells, Leydig cells, macrophages) and nuclei with their chromatin texture
(docs/physics-notes.md, interstitium and germ-cell nuclei).

Sparse objects are composited on the pixels they touch only (flat indices); textures are
evaluated at pixel centres in world coordinates, so a window renders the same values for
the same world point whatever window asks.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from simulators.specimens._raster import _NOISE_Q, stamp_ellipses
from simulators.specimens.base import Composition, Label, Window
from simulators.specimens.testis.interstitium import PLASMA, RBC, VWALL

_F32 = np.float32
_Q = np.interp(np.linspace(0.0, 1.0, 2001), np.linspace(0.0, 1.0, 21), _NOISE_Q)
_R3 = (1.0 - np.abs(2.0 * _Q - 1.0)) ** 3
#: mean and sd of the chromatin texture ``(1 - |2 n - 1|)^3`` of one-octave value noise
THREAD_MEAN, THREAD_SD = float(_R3.mean()), float(_R3.std())


def _flat(window: Window, sl: tuple[slice, slice], m: NDArray) -> tuple[NDArray, NDArray]:
    """Nonzero pixels of map ``m`` over ``sl``: (local flat index, flat index in window)."""
    loc = np.flatnonzero(m != 0)  # (a bool mask: faster than a float one)
    w = sl[1].stop - sl[1].start
    return loc, (loc // w + sl[0].start) * window.nx + (loc % w + sl[1].start)


def blend(comp: Composition, idx: NDArray, cv: NDArray, material: dict[str, float],
          label: int | None = None, displace: bool = True) -> None:
    """Replace the fraction ``cv`` of the window's flat pixels ``idx`` by ``material``
    (protein, lipid, water); with ``displace`` collagen, chi2, pigment and heme go too."""
    keep = 1.0 - cv
    for s, val in material.items():
        f = comp.concentrations[s].reshape(-1)
        f[idx] = f[idx] * keep + cv * val
    if displace:
        for a in (comp.concentrations["collagen"], comp.chi2, comp.pigment, comp.heme):
            f = a.reshape(-1)
            f[idx] *= keep
    if label is not None:
        comp.labels.reshape(-1)[idx[cv >= 0.5]] = label


def stamp_cells(window: Window, comp: Composition, cells: NDArray, material: dict[str, float],
                pigment: float = 0.0) -> None:
    """Cell bodies (rows x, y, a, b, angle) of one ``material`` over the composition, with
    a uniform transient absorption ``pigment`` (lipofuscin of Leydig cytoplasm)."""
    if cells.shape[0] == 0:
        return
    res = stamp_ellipses(window, cells[:, 0], cells[:, 1], cells[:, 2], cells[:, 3],
                         cells[:, 4], [np.ones(cells.shape[0])])
    if res is None:
        return
    sl, (cov,) = res
    loc, idx = _flat(window, sl, cov)
    cv = np.minimum(cov.reshape(-1)[loc], 1.0)
    blend(comp, idx, cv, material, Label.CYTOPLASM)
    if pigment:
        f = comp.pigment.reshape(-1)
        f[idx] += cv * _F32(pigment)


def stamp_nuclei(window: Window, comp: Composition, nu: NDArray, nuc_material: dict,
                 tex: NDArray[np.float32]) -> None:
    """Nuclei (rows of :func:`~.contents.tubule_contents`: x, y, a, b, angle, coverage
    weight, dna, protein, chromatin texture amplitude ``A``) into ``comp``.

    DNA is modulated by the chromatin texture: ``dna (1 + A t)``, clipped at 0, with ``t``
    the zero-mean, unit-sd ridges ``(1 - |2 n - 1|)^3`` of the window's 3.5 um histology
    noise ``tex`` (= ``n``): thread-like strands ~0.5-1 um wide, ~2-4 um apart.
    """
    if nu.shape[0] == 0:
        return
    res = stamp_ellipses(window, nu[:, 0], nu[:, 1], nu[:, 2], nu[:, 3], nu[:, 4],
                         [nu[:, 5], nu[:, 6], nu[:, 7], nu[:, 6] * nu[:, 8]])
    if res is None:
        return
    sl, (cov, dna, prot, wtex) = res
    np.minimum(cov, 1.0, out=cov)  # (touching nuclei add their DNA)
    t = np.multiply(tex[sl], _F32(2.0), dtype=_F32)
    t -= _F32(1.0)
    np.abs(t, out=t)
    np.subtract(_F32(1.0), t, out=t)
    cube = t * t
    cube *= t
    cube -= _F32(THREAD_MEAN)
    cube *= wtex
    cube *= _F32(1.0 / THREAD_SD)
    dna += cube
    np.maximum(dna, 0.0, out=dna)
    keep = np.subtract(_F32(1.0), cov, out=t)
    conc = comp.concentrations
    conc["dna"][sl] = dna  # no DNA outside nuclei
    v = conc["protein"][sl]
    v *= keep
    v += prot
    for s in ("lipid", "water"):
        v = conc[s][sl]
        v *= keep
        np.multiply(cov, _F32(nuc_material[s]), out=cube)
        v += cube
    for v in (conc["collagen"][sl], comp.chi2[sl], comp.pigment[sl], comp.heme[sl]):
        v *= keep
    np.putmask(comp.labels[sl], cov >= 0.5, Label.NUCLEUS)


def stamp_vessels(window: Window, comp: Composition, ves: NDArray, rbc: NDArray) -> None:
    """Blood vessels into ``comp``: the wall (endothelium / smooth muscle, :data:`VWALL`)
    over the interstitium, keeping its collagen (adventitia, basement membrane), the lumen
    (plasma), then the red blood cells (:data:`RBC`, and their haemoglobin into
    ``comp.heme``). ``ves`` / ``rbc``: rows of :func:`~.interstitium.vessels`. Labels:
    :attr:`Label.VESSEL`."""
    if ves.shape[0]:
        x, y, a, b, ang, wall = ves[:, :6].T
        lb = b - wall
        for aa, bb, mat, disp in ((a, b, VWALL, False), (a / b * lb, lb, PLASMA, True)):
            ok = bb > 0.3
            res = (stamp_ellipses(window, x[ok], y[ok], aa[ok], bb[ok], ang[ok],
                                  [np.ones(int(ok.sum()))]) if ok.any() else None)
            if res is None:
                continue
            sl, (cov,) = res
            loc, idx = _flat(window, sl, cov)
            blend(comp, idx, np.minimum(cov.reshape(-1)[loc], 1.0), mat, Label.VESSEL,
                  displace=disp)
    if rbc.shape[0]:
        x, y, a, b, ang, rim, ctr = rbc.T
        # rim disc minus the central pallor (half size): the biconcave profile
        res = stamp_ellipses(window, np.r_[x, x], np.r_[y, y], np.r_[a, 0.5 * a],
                             np.r_[b, 0.5 * b], np.r_[ang, ang], [np.r_[rim, ctr - rim]])
        if res is not None:
            sl, (h,) = res
            loc, idx = _flat(window, sl, h)
            cv = np.clip(h.reshape(-1)[loc], 0.0, 1.0)
            blend(comp, idx, cv, RBC)
            comp.labels.reshape(-1)[idx[cv >= 0.5]] = Label.VESSEL
            hf = comp.heme.reshape(-1)
            hf[idx] = np.minimum(hf[idx] + cv, 1.0)
