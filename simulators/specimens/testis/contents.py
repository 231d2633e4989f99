"""What a testis section holds: materials, the epithelium of each tubule (myoid, Sertoli
and germ-cell nuclei by the tubule's spermatogenic state, lipid and protein droplets) and
the Leydig-cell clusters of the interstitium (cells, nuclei, lipid droplets, lipofuscin).

Each tubule's contents and its Leydig clusters come from their own
generator (``rng_for(stream, i, j)``), so they are the same whichever window asks.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from simulators.specimens.testis.config import STATES
from simulators.specimens.testis.geometry import SectionGeometry, Tubule

#: rng streams of the tubule contents and of the Leydig clusters
S_CONTENT, S_LEYDIG = 2, 3

# material table (mass fractions relative to pure references)
EPI = dict(protein=0.24, lipid=0.04, water=0.70)
NUC = dict(protein=0.20, lipid=0.01, water=0.62)
LEY = dict(protein=0.30, lipid=0.07, water=0.62)
INT = dict(protein=0.08, lipid=0.01, water=0.82)
WALL = dict(protein=0.12, lipid=0.01, water=0.55)
PDROP = dict(protein=0.78, lipid=0.03, water=0.25)
LIPID_LABEL_MIN = 0.25  #: LD label where the in-focus lipid fraction (partial volume) >= this


def tubule_contents(g: SectionGeometry, i: int, j: int) -> dict[str, NDArray] | None:
    """Nuclei, lipid droplets and protein droplets of the tubule of hash cell (i, j).

    Returns arrays: ``nuc`` (n, 8) = x, y, a, b, angle, coverage weight, dna, protein;
    ``ld`` (m, 5) = x, y, r, z, density; ``pd`` (k, 4) = x, y, r, z.
    """
    t = g.tubule(i, j)
    if t is None:
        return None
    c = g.config
    rng = g.rng_for(S_CONTENT, i, j)
    b, ratio = t.b_um, t.axis_ratio
    st = STATES[t.state]
    germ = st.germ
    nuc: list[NDArray] = []

    def ring(depth: float, spacing: float, jit: float) -> tuple[NDArray, NDArray]:
        """Points along a ring at ``depth`` um below the basement membrane (unstretched)."""
        rho0 = b - t.wall_um - depth
        if rho0 <= 2.0:
            return np.empty(0), np.empty(0)
        circ = 2 * math.pi * rho0 * (1 + ratio) / 2
        n = max(1, int(circ / spacing))
        phi = (np.arange(n) + rng.uniform(-0.3, 0.3, n)) * 2 * math.pi / n + rng.uniform(
            0, 2 * math.pi)
        dep = depth + rng.normal(0.0, jit, n)
        return dep, phi

    def place(dep: NDArray, phi: NDArray) -> tuple[NDArray, NDArray, NDArray]:
        """World position for depth below the *local* membrane; returns x, y, rho."""
        rho = b - t.wall_um - dep
        x, y = t.to_world(rho, phi)
        w = g.wall_at(t, x, y)
        rho = b - w - dep
        x, y = t.to_world(rho, phi)
        return x, y, rho

    def tangent(phi: NDArray) -> NDArray:
        return np.arctan2(np.cos(phi), -ratio * np.sin(phi)) + t.angle_rad

    def add(x, y, a, bb, ang, cw, dna, prot) -> None:
        n = np.size(x)
        nuc.append(np.column_stack([x, y, np.broadcast_to(a, n), np.broadcast_to(bb, n),
                                    np.broadcast_to(ang, n), np.broadcast_to(cw, n),
                                    np.broadcast_to(dna, n), np.broadcast_to(prot, n)]))

    epi_h = b - t.wall_um - t.lumen_um  # epithelium height (mean)
    # myoid (peritubular) cells: flat nuclei inside the lamina propria
    dep, phi = ring(0.0, st.myoid_spacing_um, 0.0)
    if phi.size:
        rho0 = b - t.wall_um
        x0, y0 = t.to_world(rho0, phi)
        w = g.wall_at(t, x0, y0)
        rho = b - w * rng.uniform(0.35, 0.65, phi.size)
        x, y = t.to_world(rho, phi)
        ok = w > 2.6
        n = int(ok.sum())
        add(x[ok], y[ok], rng.uniform(5.0, 7.5, n), rng.uniform(1.0, 1.3, n),
            tangent(phi[ok]), 1.0, rng.uniform(0.14, 0.2, n), 0.2)
    # Sertoli cells
    ser_sp = st.sertoli_spacing_um
    if not germ:  # Sertoli-cell-only / sclerotic: nuclei over the epithelium's height
        ser_d = (min(5.0, 0.5 * epi_h), max(min(6.0, epi_h), epi_h - 10.0))
    else:
        ser_d = (6.5, 12.0)
    dep, phi = ring(0.5 * (ser_d[0] + ser_d[1]), ser_sp, 0.0)
    if phi.size:
        dep = rng.uniform(ser_d[0], ser_d[1], phi.size)
        x, y, _ = place(dep, phi)
        n = phi.size
        radial = tangent(phi) + math.pi / 2
        ang = radial + rng.normal(0.0, 0.45, n)
        add(x, y, rng.uniform(4.5, 6.0, n), rng.uniform(2.6, 3.4, n), ang, 1.0,
            rng.uniform(0.08, 0.12, n), 0.2)
        # nucleoli (protein only, no extra coverage)
        off = rng.uniform(-1.5, 1.5, n)
        add(x + off * np.cos(ang), y + off * np.sin(ang), 1.1, 1.1, 0.0, 0.0, 0.04, 0.3)
    # spermatogonia on the basement membrane, long axis parallel to it
    if "spermatogonia" in germ:
        dep, phi = ring(3.4, st.spermatogonia_spacing_um, 0.4)
        keep = rng.uniform(size=phi.size) < st.germ_keep
        dep, phi = dep[keep], phi[keep]
        if phi.size:
            x, y, _ = place(dep, phi)
            n = phi.size
            add(x, y, rng.uniform(3.4, 4.2, n), rng.uniform(2.5, 3.0, n),
                tangent(phi) + rng.normal(0, 0.15, n), 1.0, rng.uniform(0.15, 0.26, n), 0.2)
    # primary spermatocytes: largest nuclei, 2-3 rows
    if "spermatocytes" in germ:
        for d0 in (17.0, 31.0, 45.0)[:st.spermatocyte_rows]:
            if d0 + 6.0 > epi_h:
                break
            dep, phi = ring(d0, 15.5, 1.5)
            if not phi.size:
                continue
            x, y, _ = place(dep, phi)
            n = phi.size
            r = rng.uniform(4.5, 6.0, n)
            dna = rng.uniform(0.15, 0.2, n)
            pyk = rng.uniform(size=n) < st.pyknotic_fraction
            r[pyk] = rng.uniform(2.5, 3.5, int(pyk.sum()))  # degenerating, pyknotic
            dna[pyk] = rng.uniform(0.35, 0.5, int(pyk.sum()))
            keep = rng.uniform(size=n) < 0.85 * st.germ_keep
            add(x[keep], y[keep], r[keep], (r * rng.uniform(0.88, 1.0, n))[keep],
                rng.uniform(0, math.pi, n)[keep], 1.0, dna[keep], 0.2)
    # round spermatids: rows up to the lumen
    if "round_spermatids" in germ:
        d0 = 41.0
        while d0 + 4.0 < epi_h:
            dep, phi = ring(d0, 7.8, 1.0)
            if phi.size:
                x, y, _ = place(dep, phi)
                n = phi.size
                r = rng.uniform(2.5, 3.0, n)
                keep = rng.uniform(size=n) < 0.9 * st.germ_keep
                add(x[keep], y[keep], r[keep], r[keep], 0.0, 1.0,
                    rng.uniform(0.22, 0.3, n)[keep], 0.2)
            d0 += 7.5
    # elongated spermatid heads in bundles near the lumen (stage dependent), sperm in lumen
    if "elongated_spermatids" in germ and t.elongated:
        dep, phi = ring(max(epi_h - 8.0, 10.0), 22.0, 0.0)
        for d_b, ph_b in zip(dep, phi):
            k = int(rng.integers(6, 13))
            rho_b = b - t.wall_um - d_b
            ph = ph_b + rng.normal(0.0, 3.0 / max(rho_b, 5.0), k)
            dd = d_b + rng.uniform(-7.0, 9.0, k)
            x, y = t.to_world(b - t.wall_um - dd, ph)
            add(x, y, rng.uniform(2.0, 2.5, k), rng.uniform(1.25, 1.5, k),
                tangent(ph) + math.pi / 2 + rng.normal(0, 0.2, k), 1.0,
                rng.uniform(0.6, 0.8, k), 0.35)
    if st.lumen_sperm > 0:
        k = int(rng.poisson(st.lumen_sperm))
        rr = t.lumen_um * 0.8 * np.sqrt(rng.uniform(size=k))
        x, y = t.to_world(rr, rng.uniform(0, 2 * math.pi, k))
        add(x, y, 2.2, 1.4, rng.uniform(0, math.pi, k), 1.0, rng.uniform(0.6, 0.8, k), 0.35)
    nuc_arr = np.concatenate(nuc) if nuc else np.empty((0, 8))

    # ---- lipid droplets (Sertoli associated: basal, clustered) ----
    a_epi = math.pi * ratio * ((b - t.wall_um) ** 2 - t.lumen_um ** 2)
    ld = droplets(g, rng, t, a_epi, t.droplet_area_fraction, t.droplet_diameter_um,
                  c.droplet_diameter_sigma, nuc_arr, basal=st.droplets_basal)
    dens = t.droplet_density * rng.uniform(0.95, 1.05, ld.shape[0])
    ld = np.column_stack([ld, dens])
    # ---- protein droplets (SPT) ----
    pd = droplets(g, rng, t, a_epi, t.protein_droplet_area_fraction, 1.8, 0.3, nuc_arr,
                  basal=False, dmin=1.0, dmax=3.0)
    return {"nuc": nuc_arr, "ld": ld, "pd": pd}


def droplets(g: SectionGeometry, rng: np.random.Generator, t: Tubule, a_epi: float,
             frac: float, median_um: float, sigma: float, nuc: NDArray, *,
             basal: bool, dmin: float = 0.3, dmax: float = 2.0) -> NDArray:
    """Spheres in the epithelium: (n, 4) = x, y, r, z (focus offset, |z| < r).

    ``frac`` is the in-focus cross-section area (``pi (r^2 - z^2)``) over the epithelium
    area ``a_epi`` (um^2); diameters are lognormal (``median_um``, ``sigma``) clipped to
    ``dmin..dmax``. Positions are in basal clusters (Sertoli cytoplasm between the
    basal nuclei, ``basal``) or spread over the epithelium height; candidates that fall
    on a nucleus (``nuc`` rows as in :func:`tubule_contents`) are replaced by others.
    """
    if frac <= 0 or a_epi <= 0:
        return np.empty((0, 4))
    d = np.clip(median_um * np.exp(sigma * rng.standard_normal(4096)), dmin, dmax)
    mean_area = math.pi * float(np.mean((d / 2) ** 2)) * 2.0 / 3.0
    n = int(rng.poisson(frac * a_epi / mean_area))
    if n == 0:
        return np.empty((0, 4))
    m = 3 * n + 16  # candidates
    d = np.clip(median_um * np.exp(sigma * rng.standard_normal(m)), dmin, dmax)
    r = d / 2
    z = rng.uniform(-1.0, 1.0, m) * r
    b = t.b_um
    epi_h = b - t.wall_um - t.lumen_um
    phi = rng.uniform(0, 2 * math.pi, m)
    if basal:
        ncl = max(1, m // 6)
        cphi = rng.uniform(0, 2 * math.pi, ncl)
        cdep = 1.0 + rng.exponential(6.0, ncl)
        k = rng.integers(0, ncl, m)
        rho_c = b - t.wall_um - cdep[k]
        phi = cphi[k] + rng.normal(0.0, 3.0, m) / np.maximum(rho_c, 5.0)
        dep = np.abs(cdep[k] + rng.normal(0.0, 2.0, m))
    else:
        dep = rng.uniform(2.0, max(3.0, epi_h - 2.0), m)
    rho = b - t.wall_um - dep
    x, y = t.to_world(rho, phi)
    w = g.wall_at(t, x, y)
    lum = g.lumen_at(t, x, y)
    # keep inside the epithelium: below the local membrane, above the local lumen
    rho = np.minimum(rho, b - w - r - 0.3)
    rho = np.maximum(rho, lum + r + 0.3)
    x, y = t.to_world(rho, phi)
    ok = rho < b - w - r - 0.2
    cov = nuc[:, 5] > 0
    if cov.sum() >= 8:
        tree = cKDTree(nuc[cov, :2])
        dist, idx = tree.query(np.column_stack([x, y]), k=8)
        ok &= ~np.any(dist < nuc[cov, 2][idx] + r[:, None], axis=1)
    keep = np.flatnonzero(ok)[:n]
    return np.column_stack([x, y, r, z])[keep]


def leydig_may_touch(g: SectionGeometry, i: int, j: int, x0: float, x1: float, y0: float,
                     y1: float) -> bool:
    """Whether the Leydig clusters of hash cell (i, j) can reach the box (um).

    Only a cell holding a tubule has clusters; a cluster centre lies at most
    :attr:`SectionGeometry.leydig_offset_um` beyond the tubule's outline, its cells within
    ``10 sqrt(4 n + 1)`` um of the centre (n the mean cluster size, the count is capped at
    4 n + 1) and a cell's semi-axis is <= 10 um x ``leydig_cell_scale``:
    :attr:`SectionGeometry.leydig_margin_um` beyond the outline in all.
    """
    t = g.tubule(i, j)
    if t is None:
        return False
    r = t.a_um + g.leydig_margin_um
    return (t.cx_um - r < x1 and t.cx_um + r > x0 and t.cy_um - r < y1
            and t.cy_um + r > y0)


def leydig_clusters(g: SectionGeometry, i: int, j: int) -> dict[str, NDArray]:
    """Leydig-cell clusters in the interstitium next to the tubule of hash cell (i, j)
    (none without a tubule).

    The tubule has Poisson(``leydig_clusters_per_tubule``) clusters; each is centred at the
    first of 8 candidate points, 6 um to :attr:`SectionGeometry.leydig_offset_um` outside
    the tubule's outline at a random angle, that lies in tissue and >= 6 um from every
    tubule (else the cluster is dropped). Returns arrays: ``cells`` (n, 5) = x, y, a, b,
    angle; ``nuc`` (n, 8) as in :func:`tubule_contents`; ``ld`` (m, 5) = x, y, r, z,
    density; ``lf`` (k, 5) = lipofuscin granules x, y, r, z, pigment weight.
    """
    c = g.config
    rng = g.rng_for(S_LEYDIG, i, j)
    t0 = g.tubule(i, j)
    reach = g.leydig_margin_um + 20.0
    near = [] if t0 is None else g.tubules_in(t0.cx_um - t0.a_um - reach,
                                              t0.cx_um + t0.a_um + reach,
                                              t0.cy_um - t0.a_um - reach,
                                              t0.cy_um + t0.a_um + reach)

    def outside(x: NDArray, y: NDArray, margin: float | NDArray) -> NDArray:
        ok = g.tissue_at(x, y)
        for t in near:
            ok &= t.radius_at(x, y) > t.b_um + margin
        return ok

    centres = []
    if t0 is not None:
        for _ in range(min(int(rng.poisson(c.leydig_clusters_per_tubule)), 8)):
            phi = rng.uniform(0, 2 * math.pi, 8)
            ex, ey = t0.to_world(t0.b_um, phi)  # points of the outline
            off = rng.uniform(6.0, g.leydig_offset_um, 8)
            ux, uy = ex - t0.cx_um, ey - t0.cy_um
            nrm = np.maximum(np.hypot(ux, uy), 1e-9)
            cand_x, cand_y = ex + off * ux / nrm, ey + off * uy / nrm
            good = np.nonzero(outside(cand_x, cand_y, 6.0))[0]
            if good.size:
                centres.append((float(cand_x[good[0]]), float(cand_y[good[0]])))
    cells, nucs, lds, lfs = [], [], [], []
    for kx, ky in centres:
        m = min(max(1, int(rng.poisson(c.leydig_cluster_cells))),
                int(4 * c.leydig_cluster_cells + 1))
        k = np.arange(m)
        rad = 9.0 * np.sqrt(k + 0.3) * rng.uniform(0.9, 1.1, m)
        ang = k * 2.39996 + rng.uniform(-0.25, 0.25, m)
        x = kx + rad * np.cos(ang)
        y = ky + rad * np.sin(ang)
        sa = rng.uniform(7.5, 10.0, m) * c.leydig_cell_scale
        sb = sa * rng.uniform(0.75, 0.95, m)
        ok = outside(x, y, sa + 2.0)
        x, y, sa, sb = x[ok], y[ok], sa[ok], sb[ok]
        m = x.size
        if m == 0:
            continue
        th = rng.uniform(0, math.pi, m)
        cells.append(np.column_stack([x, y, sa, sb, th]))
        # nucleus (eccentric), nucleolus
        off = rng.uniform(0, 2.0, m)
        oa = rng.uniform(0, 2 * math.pi, m)
        nxy = (x + off * np.cos(oa), y + off * np.sin(oa))
        nr = rng.uniform(3.0, 4.0, m)
        z0 = np.zeros(m)
        nucs.append(np.column_stack([nxy[0], nxy[1], nr, nr * rng.uniform(0.85, 1.0, m),
                                     rng.uniform(0, math.pi, m), z0 + 1.0,
                                     rng.uniform(0.12, 0.16, m), z0 + 0.2]))
        nucs.append(np.column_stack([nxy[0], nxy[1], z0 + 0.9, z0 + 0.9, z0, z0,
                                     z0 + 0.03, z0 + 0.3]))
        # lipid droplets and lipofuscin granules inside the cell, off the nucleus
        for kind, mean_n in (("ld", c.leydig_droplets_per_cell),
                             ("lf", c.leydig_lipofuscin_per_cell)):
            cnt = rng.poisson(mean_n, m)
            owner = np.repeat(np.arange(m), cnt)
            q = owner.size
            if q == 0:
                continue
            rr = np.sqrt(rng.uniform(0, 1, q)) * 0.85
            pa = rng.uniform(0, 2 * math.pi, q)
            u, v = rr * sa[owner] * np.cos(pa), rr * sb[owner] * np.sin(pa)
            ct, st = np.cos(th[owner]), np.sin(th[owner])
            px, py = x[owner] + u * ct - v * st, y[owner] + u * st + v * ct
            if kind == "ld":
                r = np.clip(0.5 * np.exp(0.35 * rng.standard_normal(q)), 0.15, 1.0)
            else:
                r = rng.uniform(0.25, 0.5, q)
            far = np.hypot(px - nxy[0][owner], py - nxy[1][owner]) > nr[owner] + r
            z = rng.uniform(-1, 1, q) * r
            if kind == "ld":
                w = c.leydig_droplet_density * rng.uniform(0.95, 1.05, q)
                lds.append(np.column_stack([px, py, r, z, w])[far])
            else:
                w = rng.uniform(0.15, 0.4, q)
                lfs.append(np.column_stack([px, py, r, z, w])[far])

    def cat(parts: list, width: int) -> NDArray:
        return np.concatenate(parts) if parts else np.empty((0, width))

    return {"cells": cat(cells, 5), "nuc": cat(nucs, 8), "ld": cat(lds, 5),
            "lf": cat(lfs, 5)}
