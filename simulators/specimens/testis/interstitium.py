"""The interstitium between the tubules: blood vessels with red blood cells, irregular
Leydig-cell clusters and macrophages (docs/physics-notes.md, interstitium).

Objects are generated per cell of a square *interstitial grid* (side :func:`grid_um`, the
area of one tubule of the patient), from their own generators
(``rng_for(stream, i, j)``), and are placed by rejection: a candidate is kept only where it
lies in the section, outside every tubule outline (with a margin) and off the vessels. So
each grid cell holds on average one tubule's worth of interstitial objects, whatever the
tubule packing, and everything a grid cell generates lies within :func:`reach_um` of its
square: a window needs only the grid cells near it (:func:`grid_cells`).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from simulators.optics import SRS_AXIAL_FWHM_UM, axial_fraction
from simulators.specimens.base import Window
from simulators.specimens.testis.config import TestisConfig
from simulators.specimens.testis.geometry import SectionGeometry, Tubule

#: rng streams of the Leydig clusters, vessels and macrophages of a grid cell
S_LEYDIG, S_VESSEL, S_MACRO = 3, 40, 41

# materials (mass fractions relative to pure references)
LEY = dict(protein=0.30, lipid=0.07, water=0.62)  #: Leydig cytoplasm (SER, lipid rich)
MAC = dict(protein=0.22, lipid=0.05, water=0.70)  #: macrophage cytoplasm (lysosomes)
VWALL = dict(protein=0.20, lipid=0.03, water=0.72)  #: endothelium / smooth muscle
PLASMA = dict(protein=0.07, lipid=0.005, water=0.92)  #: blood plasma (~7 g/dL protein)
RBC = dict(protein=0.33, lipid=0.01, water=0.65)  #: erythrocyte (MCHC ~33 g/dL)

#: Chromatin texture amplitudes (granular, :data:`~.contents.NUC_COLS`) of interstitial
#: nuclei: Leydig (round, euchromatic), macrophage (clumped heterochromatin), endothelial /
#: smooth muscle (flat, dense)
TEX_LEYDIG = 0.15
TEX_MACRO = 0.3
TEX_ENDO = 0.2

# vessels: (diameter range um, wall thickness range um, largest profile axis ratio)
CAPILLARY = ((5.0, 10.0), (0.8, 1.5), 4.0)
SMALL_VESSEL = ((20.0, 60.0), (2.0, 8.0), 2.5)
#: tube haematocrit range: capillaries (Fahraeus effect), small vessels
HCT_CAPILLARY, HCT_VESSEL = (0.15, 0.3), (0.3, 0.45)
#: erythrocyte: diameter, rim and centre thickness (Evans & Fung 1972), um
RBC_D_UM, RBC_RIM_UM, RBC_CENTRE_UM = 7.8, 2.5, 0.8
#: Leydig clusters: cell semi-axis range (x leydig_cell_scale), um; macrophage semi-axes
LEYDIG_SA_UM = (7.5, 10.0)
MACRO_SA_UM = (6.0, 10.0)
_TRIES = 24  #: candidate positions per object


def grid_um(c: TestisConfig) -> float:
    """Side (um) of an interstitial grid cell: the section area per tubule, i.e. the cell
    of a hexagonal packing at the patient's pitch (``pitch_factor`` x mean diameter)."""
    pitch = c.pitch_factor * c.tubule_diameter_um * c.mean_diameter_factor
    return pitch * math.sqrt(math.sqrt(3.0) / 2.0)


def leydig_cap_um(c: TestisConfig) -> float:
    """Largest distance of a Leydig cell's centre from its cluster's seed (um)."""
    return 12.0 * math.sqrt(4.0 * c.leydig_cluster_cells + 1.0) * c.leydig_cell_scale


def vessel_reach_um() -> float:
    """Largest semi-major axis of a vessel profile (um): how far a vessel reaches beyond
    its grid square."""
    return max(0.5 * CAPILLARY[0][1] * CAPILLARY[2], 0.5 * SMALL_VESSEL[0][1] * SMALL_VESSEL[2])


def cell_reach_um(c: TestisConfig) -> float:
    """How far (um) a Leydig cell or macrophage reaches beyond its grid square."""
    return max(leydig_cap_um(c) + LEYDIG_SA_UM[1] * c.leydig_cell_scale, MACRO_SA_UM[1]) + 1.0


def reach_um(c: TestisConfig) -> float:
    """How far (um) beyond its grid square anything a grid cell generates can reach."""
    return max(cell_reach_um(c), vessel_reach_um()) + 1.0


def vessel_neighbours(c: TestisConfig) -> int:
    """Grid cells (i +- k, j +- k) whose vessels the cells of grid cell (i, j) may meet."""
    return math.ceil((cell_reach_um(c) + vessel_reach_um()) / grid_um(c))


def grid_cells(c: TestisConfig, x0: float, x1: float, y0: float, y1: float
               ) -> list[tuple[int, int]]:
    """Interstitial grid cells (i, j) whose objects may meet the world box (um)."""
    s, r = grid_um(c), reach_um(c)
    cx, cy = c.center_um
    i0, i1 = math.floor((x0 - r - cx) / s), math.floor((x1 + r - cx) / s)
    j0, j1 = math.floor((y0 - r - cy) / s), math.floor((y1 + r - cy) / s)
    return [(i, j) for j in range(j0, j1 + 1) for i in range(i0, i1 + 1)]


def _square(c: TestisConfig, i: int, j: int) -> tuple[float, float, float]:
    s = grid_um(c)
    cx, cy = c.center_um
    return cx + i * s, cy + j * s, s


def _near_tubules(g: SectionGeometry, i: int, j: int, reach: float) -> list[Tubule]:
    """Tubules whose outline may come within 2 um of grid square (i, j) grown by ``reach``."""
    x, y, s = _square(g.config, i, j)
    r = reach + 2.0
    return g.tubules_in(x - r, x + s + r, y - r, y + s + r)


def _tubule_frames(tubs: list[Tubule]) -> NDArray:
    """(6, n) per tubule: centre x, y, cos and sin of the angle, axis ratio, b (um), the
    numbers :meth:`~.geometry.Tubule.radius_at` uses, for :func:`_clear_of_tubules`."""
    return np.array([(t.cx_um, t.cy_um, math.cos(t.angle_rad), math.sin(t.angle_rad),
                      t.axis_ratio, t.b_um) for t in tubs], float).reshape(-1, 6).T


def _clear_of_tubules(frames: NDArray, x: NDArray, y: NDArray, margin: NDArray | float
                      ) -> NDArray[np.bool_]:
    """True where points lie outside every tubule outline by more than ``margin`` um
    (measured in the tubule's unstretched frame, never more than the world distance).
    ``frames``: :func:`_tubule_frames` of the tubules (the same arithmetic as
    :meth:`~.geometry.Tubule.radius_at`, for all tubules at once)."""
    x, y = np.asarray(x), np.asarray(y)
    if frames.shape[1] == 0:
        return np.ones(np.broadcast_shapes(x.shape, y.shape), bool)
    cx, cy, ca, sa, ratio, b = (v.reshape((-1,) + (1,) * max(x.ndim, y.ndim))
                                for v in frames)
    dx, dy = x - cx, y - cy
    u = (dx * ca + dy * sa) / ratio
    v = -dx * sa + dy * ca
    return np.all(np.hypot(u, v) > b + margin, axis=0)


def _ellipse_outline(x: NDArray, y: NDArray, a: NDArray, b: NDArray, ang: NDArray,
                     k: int = 24) -> tuple[NDArray, NDArray]:
    """(n, k) world points on the outlines of ellipses."""
    ph = np.linspace(0.0, 2 * math.pi, k, endpoint=False)
    u = a[:, None] * np.cos(ph)[None, :]
    v = b[:, None] * np.sin(ph)[None, :]
    ca, sa = np.cos(ang)[:, None], np.sin(ang)[:, None]
    return x[:, None] + u * ca - v * sa, y[:, None] + u * sa + v * ca


def _off_vessels(ves: NDArray, x: NDArray, y: NDArray, r: NDArray | float) -> NDArray:
    """True where discs (x, y, radius r) miss every vessel profile (rows of
    :func:`vessels`), by a bounding-ellipse test."""
    x = np.asarray(x, float)
    if ves.shape[0] == 0:
        return np.ones(x.shape, bool)
    rr = np.broadcast_to(np.asarray(r, float), x.shape)[..., None]
    dx = x[..., None] - ves[:, 0]
    dy = np.asarray(y, float)[..., None] - ves[:, 1]
    ca, sa = np.cos(ves[:, 4]), np.sin(ves[:, 4])
    u = (dx * ca + dy * sa) / (ves[:, 2] + rr)
    v = (dy * ca - dx * sa) / (ves[:, 3] + rr)
    return np.all(u * u + v * v > 1.0, axis=-1)


def _all_tissue(g: SectionGeometry, i: int, j: int) -> bool:
    """Whether grid square (i, j), grown by the reach, lies wholly in the section with no
    tear (bounds of the outline and hole noise, as the renderer uses them); memoised in
    ``g.memo`` (vessels and cells of a square both ask)."""
    key = ("all_tissue", i, j)
    hit = g.memo.get(key)
    if hit is None:
        hit = g.memo[key] = _all_tissue_uncached(g, i, j)
    return bool(hit)


def _all_tissue_uncached(g: SectionGeometry, i: int, j: int) -> bool:
    x0, y0, s = _square(g.config, i, j)
    r = reach_um(g.config)
    n = int(math.ceil((s + 2 * r) / 20.0))
    w = Window(x0 - r, y0 - r, n, n, 20.0)
    return g.section_coverage(w) is None and g.hole_coverage(w) is None


def _first_in_tissue(g: SectionGeometry, ok: NDArray | np.bool_ | bool, x: NDArray,
                     y: NDArray, inside: bool) -> int:
    """Index of the first candidate with ``ok`` that lies in the section, or -1 (the
    section test runs on the few candidates needed; none when ``inside``)."""
    k = np.flatnonzero(np.broadcast_to(ok, np.shape(x)))[:4]
    if inside:
        return int(k[0]) if k.size else -1
    for q in k.tolist():  # one point at a time (tissue_point: tissue_at's answer)
        if g.tissue_point(x[q], y[q]):
            return q
    return -1


def vessels(g: SectionGeometry, i: int, j: int) -> dict[str, NDArray]:
    """Blood-vessel profiles of interstitial grid cell (i, j).

    Returns ``vessels`` (n, 7) = x, y, a, b, angle, wall_um, kind (0 capillary, 1 small
    vessel): the outer outline (an oblique cut of a cylinder: ``a = b / cos theta``, with
    ``cos theta`` uniform, i.e. isotropic vessel directions, up to the kind's largest
    ratio) and the wall thickness in the unstretched frame; ``rbc`` (m, 7) = x, y, a, b,
    angle, rim weight, centre weight: red blood cells (axial fraction of the rim and of
    the central pallor in focus, :func:`red_cells`); ``nuc`` (k, 9) endothelial nuclei
    (columns as :func:`~.contents.tubule_contents`).
    """
    c = g.config
    rng = g.rng_for(S_VESSEL, i, j)
    x0, y0, s = _square(c, i, j)
    tubs = _tubule_frames(_near_tubules(g, i, j, vessel_reach_um()))
    inside = _all_tissue(g, i, j)
    rows: list[NDArray] = []
    for kind, (drange, wrange, rmax), mean in ((0, CAPILLARY, c.capillaries_per_tubule),
                                               (1, SMALL_VESSEL, c.vessels_per_tubule)):
        for _ in range(int(rng.poisson(mean))):
            b = 0.5 * rng.uniform(*drange)
            ratio = 1.0 / rng.uniform(1.0 / rmax, 1.0)
            ang = rng.uniform(0.0, math.pi)
            wall = rng.uniform(*wrange)
            px = x0 + s * rng.uniform(size=_TRIES)
            py = y0 + s * rng.uniform(size=_TRIES)
            n = np.full(_TRIES, 1.0)
            ox, oy = _ellipse_outline(px, py, ratio * b * n, b * n, ang * n)
            ok = _clear_of_tubules(tubs, ox, oy, 1.0).all(axis=1)
            if rows:
                ok &= _off_vessels(np.array(rows), px, py, b)
            k = _first_in_tissue(g, ok, px, py, inside)
            if k >= 0:
                rows.append(np.array([px[k], py[k], ratio * b, b, ang, wall, kind]))
    ves = np.array(rows) if rows else np.empty((0, 7))
    rbc, nuc = [], []
    for vx, vy, a, b, ang, wall, kind in ves:
        hct = rng.uniform(*(HCT_CAPILLARY if kind == 0 else HCT_VESSEL))
        rbc.append(red_cells(rng, vx, vy, a / b, b - wall, ang, hct))
        # endothelial / smooth-muscle nuclei: flat, in the wall, along it
        per = 2 * math.pi * b * (1 + a / b) / 2
        m = max(1, int(rng.poisson(per / (25.0 if kind == 0 else 12.0))))
        phi = rng.uniform(0, 2 * math.pi, m)
        rho = b - 0.5 * wall
        ca, sa = math.cos(ang), math.sin(ang)
        u, v = (a / b) * rho * np.cos(phi), rho * np.sin(phi)
        nx, ny = vx + u * ca - v * sa, vy + u * sa + v * ca
        tang = np.arctan2((a / b) * np.cos(phi), -np.sin(phi)) + ang
        thick = min(0.45 * wall, 1.2) if kind == 0 else min(0.4 * wall, 1.6)
        nb = np.maximum(thick, 0.5) * rng.uniform(0.9, 1.1, m)
        z0 = np.zeros(m)
        nuc.append(np.column_stack([nx, ny, rng.uniform(4.0, 6.5, m), nb, tang, z0 + 1.0,
                                    rng.uniform(0.14, 0.2, m), z0 + 0.2, z0 + TEX_ENDO]))
    return {"vessels": ves, "rbc": _cat(rbc, 7), "nuc": _cat(nuc, 9)}


def red_cells(rng: np.random.Generator, vx: float, vy: float, ratio: float, lum_b: float,
              ang: float, hct: float) -> NDArray:
    """Red blood cells in a vessel lumen (unstretched lumen radius ``lum_b`` um, profile
    stretched by ``ratio`` along ``ang``) at tube haematocrit ``hct``.

    Each erythrocyte is a biconcave disc (diameter :data:`RBC_D_UM`, rim and centre
    thickness :data:`RBC_RIM_UM` / :data:`RBC_CENTRE_UM`) at an isotropic random tilt: its
    profile is an ellipse of semi-axes ``D/2`` and ``max(D/2 |cos tilt|, rim/2)``, squeezed
    to the lumen. Its in-focus fraction is the axial-PSF fraction
    (:func:`~simulators.optics.axial_fraction`) of the chord through the rim, shortened by
    the cell's axial offset from focus (uniform, +-1.5 um); the central pallor (an ellipse
    of half the size) has the centre's chord. Rows: x, y, a, b, angle, rim weight, centre
    weight. Count: ``hct`` x lumen area / mean profile area (areal = volume fraction).
    """
    if lum_b <= 1.0:
        return np.empty((0, 7))
    area = math.pi * ratio * lum_b ** 2
    r0 = 0.5 * RBC_D_UM
    mean_prof = math.pi * r0 * r0 * 0.55
    n = int(rng.poisson(hct * area / mean_prof))
    if n == 0:
        return np.empty((0, 7))
    cos_t = rng.uniform(0.0, 1.0, n)
    a = np.full(n, min(r0, 0.95 * lum_b * ratio))
    b = np.minimum(np.maximum(r0 * cos_t, 0.5 * RBC_RIM_UM), np.minimum(a, 0.95 * lum_b))
    th = rng.uniform(0, math.pi, n)
    # positions: uniform in the lumen (unstretched frame), kept inside it
    rr = np.maximum(lum_b - b, 0.0) * np.sqrt(rng.uniform(size=n))
    ph = rng.uniform(0, 2 * math.pi, n)
    u, v = ratio * rr * np.cos(ph), rr * np.sin(ph)
    ca, sa = math.cos(ang), math.sin(ang)
    x, y = vx + u * ca - v * sa, vy + u * sa + v * ca
    z = rng.uniform(-1.5, 1.5, n)
    ct = np.maximum(cos_t, 1e-3)
    rim = axial_fraction(np.minimum(RBC_RIM_UM / ct, RBC_D_UM) - 2 * np.abs(z),
                         SRS_AXIAL_FWHM_UM)
    ctr = axial_fraction(np.minimum(RBC_CENTRE_UM / ct, RBC_D_UM) - 2 * np.abs(z),
                         SRS_AXIAL_FWHM_UM)
    return np.column_stack([x, y, a, b, th, rim, ctr])


def interstitial_cells(g: SectionGeometry, i: int, j: int, ves: NDArray
                       ) -> dict[str, NDArray]:
    """Leydig-cell clusters and macrophages of interstitial grid cell (i, j).

    ``ves``: vessel rows (:func:`vessels`) of this and the neighbouring grid cells, which
    the cells avoid. Clusters: ``Poisson(leydig_clusters_per_tubule)`` per grid cell, each
    ``min(max(1, Poisson(n)), 4 n + 1)`` cells (n = ``leydig_cluster_cells``) grown by
    random aggregation from a seed: each new cell touches a random member (centre distance
    0.75-0.95 x the sum of semi-axes), stays within :func:`leydig_cap_um` of the seed, off
    the tubules (2 um margin) and vessels, and at least 0.7 x the sum of semi-axes from
    every member; a cell with no valid place among its candidates is dropped.
    Macrophages: ``Poisson(macrophages_per_mm2 x area)``.

    Returns ``cells`` (n, 6) = x, y, a, b, angle, kind (0 Leydig, 1 macrophage); ``nuc``
    (n, 9) as :func:`~.contents.tubule_contents`; ``ld`` (m, 5) = x, y, r, z, density;
    ``lf`` (k, 5) lipofuscin x, y, r, z, pigment weight.
    """
    c = g.config
    x0, y0, s = _square(c, i, j)
    tubs = _tubule_frames(_near_tubules(g, i, j, cell_reach_um(c)))
    inside = _all_tissue(g, i, j)
    scale = c.leydig_cell_scale
    cap = leydig_cap_um(c)
    cells: list[NDArray] = []

    # only the vessels within reach of this grid square's cells matter
    rch = cell_reach_um(c)
    near = ((ves[:, 0] + ves[:, 2] > x0 - rch) & (ves[:, 0] - ves[:, 2] < x0 + s + rch)
            & (ves[:, 1] + ves[:, 2] > y0 - rch) & (ves[:, 1] - ves[:, 2] < y0 + s + rch))
    ves = ves[near]

    def place(px: NDArray, py: NDArray, r: float, ok: NDArray | bool = True) -> int:
        """Index of the first valid candidate position (and ``ok``), or -1."""
        ok = ok & _clear_of_tubules(tubs, px, py, r + 2.0) & _off_vessels(ves, px, py, r + 1.0)
        return _first_in_tissue(g, ok, px, py, inside)

    rng = g.rng_for(S_LEYDIG, i, j)
    nmax = int(4 * c.leydig_cluster_cells + 1)
    for _ in range(int(rng.poisson(c.leydig_clusters_per_tubule))):
        m = min(max(1, int(rng.poisson(c.leydig_cluster_cells))), nmax)
        sa = rng.uniform(*LEYDIG_SA_UM, m) * scale
        sb = sa * rng.uniform(0.7, 0.95, m)
        th = rng.uniform(0, math.pi, m)
        px = x0 + s * rng.uniform(size=_TRIES)
        py = y0 + s * rng.uniform(size=_TRIES)
        k0 = place(px, py, sa[0])
        if k0 < 0:
            continue
        kx, ky = px[k0], py[k0]
        cx, cy, cr = [kx], [ky], [sa[0]]
        keep = [0]
        for k in range(1, m):
            par = rng.integers(0, len(cx), 8)
            d = (np.asarray(cr)[par] + sa[k]) * rng.uniform(0.75, 0.95, 8)
            aa = rng.uniform(0, 2 * math.pi, 8)
            qx = np.asarray(cx)[par] + d * np.cos(aa)
            qy = np.asarray(cy)[par] + d * np.sin(aa)
            ok = np.hypot(qx - kx, qy - ky) <= cap
            dist = np.hypot(qx[:, None] - np.asarray(cx)[None, :],
                            qy[:, None] - np.asarray(cy)[None, :])
            ok &= np.all(dist >= 0.7 * (np.asarray(cr)[None, :] + sa[k]), axis=1)
            q = place(qx, qy, sa[k], ok) if ok.any() else -1
            if q >= 0:
                cx.append(qx[q])
                cy.append(qy[q])
                cr.append(sa[k])
                keep.append(k)
        kk = np.asarray(keep)
        cells.append(np.column_stack([cx, cy, sa[kk], sb[kk], th[kk], np.zeros(kk.size)]))
    rng = g.rng_for(S_MACRO, i, j)
    area_mm2 = (s * 1e-3) ** 2
    for _ in range(int(rng.poisson(c.macrophages_per_mm2 * area_mm2))):
        a = rng.uniform(*MACRO_SA_UM)
        px = x0 + s * rng.uniform(size=_TRIES)
        py = y0 + s * rng.uniform(size=_TRIES)
        k = place(px, py, a)
        if k >= 0:
            cells.append(np.array([[px[k], py[k], a, a * rng.uniform(0.6, 0.9),
                                    rng.uniform(0, math.pi), 1.0]]))
    cl = _cat(cells, 6)
    return {"cells": cl, **_cell_contents(g, rng, cl)}


def _cell_contents(g: SectionGeometry, rng: np.random.Generator, cl: NDArray
                   ) -> dict[str, NDArray]:
    """Nuclei, lipid droplets and lipofuscin of interstitial cells ``cl`` (rows of
    :func:`interstitial_cells`): Leydig cells a round eccentric nucleus with a nucleolus,
    ``leydig_droplets_per_cell`` LDs and ``leydig_lipofuscin_per_cell`` granules;
    macrophages an oval, bean-like nucleus (one elongated ellipse), 2 LDs and
    5 lipofuscin granules (phagolysosomes) on average."""
    c = g.config
    m = cl.shape[0]
    if m == 0:
        e = np.empty((0, 5))
        return {"nuc": np.empty((0, 9)), "ld": e, "lf": e}
    x, y, sa, sb, th, kind = cl.T
    mac = kind > 0.5
    z0 = np.zeros(m)
    off = rng.uniform(0, 2.0, m)
    oa = rng.uniform(0, 2 * math.pi, m)
    nx, ny = x + off * np.cos(oa), y + off * np.sin(oa)
    nr: NDArray = np.asarray(rng.uniform(3.0, 4.0, m))
    tex = np.where(mac, TEX_MACRO, TEX_LEYDIG)
    nucs = []
    ley = ~mac
    nucs.append(np.column_stack([nx, ny, nr, nr * rng.uniform(0.85, 1.0, m),
                                 rng.uniform(0, math.pi, m), z0 + 1.0,
                                 rng.uniform(0.12, 0.16, m), z0 + 0.2, tex])[ley])
    nucs.append(np.column_stack([nx, ny, z0 + 0.9, z0 + 0.9, z0, z0, z0 + 0.03, z0 + 0.3,
                                 z0])[ley])
    # macrophage: an oval to bean-shaped (reniform) nucleus, as one elongated ellipse
    if mac.any():
        k = int(mac.sum())
        zk = np.zeros(k)
        na = rng.uniform(3.5, 4.5, k)
        nucs.append(np.column_stack([nx[mac], ny[mac], na, na * rng.uniform(0.5, 0.65, k),
                                     rng.uniform(0, math.pi, k), zk + 1.0,
                                     rng.uniform(0.16, 0.22, k), zk + 0.2, zk + TEX_MACRO]))
    lds, lfs = [], []
    for kind_, mean_l, mean_m in (("ld", c.leydig_droplets_per_cell, 2.0),
                                  ("lf", c.leydig_lipofuscin_per_cell, 5.0)):
        cnt = rng.poisson(np.where(mac, mean_m, mean_l))
        owner = np.repeat(np.arange(m), cnt)
        q = owner.size
        if q == 0:
            continue
        rr = np.sqrt(rng.uniform(0, 1, q)) * 0.85
        pa = rng.uniform(0, 2 * math.pi, q)
        u, v = rr * sa[owner] * np.cos(pa), rr * sb[owner] * np.sin(pa)
        ct, st = np.cos(th[owner]), np.sin(th[owner])
        px, py = x[owner] + u * ct - v * st, y[owner] + u * st + v * ct
        if kind_ == "ld":
            r = np.clip(0.5 * np.exp(0.35 * rng.standard_normal(q)), 0.15, 1.0)
        else:
            r = rng.uniform(0.25, 0.5, q)
        far = np.hypot(px - nx[owner], py - ny[owner]) > nr[owner] + r
        z = rng.uniform(-1, 1, q) * r
        if kind_ == "ld":
            w = c.leydig_droplet_density * rng.uniform(0.95, 1.05, q)
            lds.append(np.column_stack([px, py, r, z, w])[far])
        else:
            w = rng.uniform(0.15, 0.4, q)
            lfs.append(np.column_stack([px, py, r, z, w])[far])
    return {"nuc": _cat(nucs, 9), "ld": _cat(lds, 5), "lf": _cat(lfs, 5)}


def _cat(parts: list[NDArray], width: int) -> NDArray:
    parts = [p for p in parts if p.shape[0]]
    return np.concatenate(parts) if parts else np.empty((0, width))
