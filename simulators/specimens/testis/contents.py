"""What a testis tubule holds: materials, the epithelium of each tubule (myoid, Sertoli
and germ-cell nuclei by the tubule's spermatogenic state, with their chromatin texture;
lipid and protein droplets). The interstitium (vessels, Leydig cells, macrophages) is
:mod:`.interstitium`.

Each tubule's contents come from their own generator (``rng_for(stream, i, j)``), so they
are the same whichever window asks.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from simulators.specimens.testis.config import STATES
from simulators.specimens.testis.geometry import SectionGeometry, Tubule

#: rng stream of the tubule contents
S_CONTENT = 2

# material table (mass fractions relative to pure references)
EPI = dict(protein=0.24, lipid=0.04, water=0.70)
NUC = dict(protein=0.20, lipid=0.01, water=0.62)
INT = dict(protein=0.08, lipid=0.01, water=0.82)
WALL = dict(protein=0.12, lipid=0.01, water=0.55)
PDROP = dict(protein=0.78, lipid=0.03, water=0.25)
LIPID_LABEL_MIN = 0.25  #: LD label where the in-focus lipid fraction (partial volume) >= this
#: Columns of a nucleus row: x, y, a, b, angle, coverage weight, dna, protein, chromatin
#: texture amplitude (relative DNA sd of the thread texture, :func:`~.stamp.stamp_nuclei`)
NUC_COLS = 9
#: chromatin texture amplitude by cell type (docs/physics-notes.md, germ-cell nuclei)
TEX_MYOID = 0.2
TEX_SERTOLI = 0.1  #: pale, euchromatic (nucleolus stamped separately)
TEX_SPG = 0.3  #: spermatogonia: dense chromatin
TEX_SPC = 0.7  #: (pachytene) spermatocytes: thread-like condensed bivalents
TEX_PYK = 0.03  #: pyknotic: homogeneous
TEX_RSPT = 0.1  #: round spermatids: pale, fine
TEX_ESPT = 0.03  #: elongated spermatids / sperm: condensed, homogeneous
TEX_NONE = 0.0  #: nucleoli, acrosomes (no DNA)


def tubule_contents(g: SectionGeometry, i: int, j: int) -> dict[str, NDArray] | None:
    """Nuclei, lipid droplets and protein droplets of the tubule of hash cell (i, j).

    Returns arrays: ``nuc`` (n, :data:`NUC_COLS`) = x, y, a, b, angle, coverage weight,
    dna, protein, signed chromatin texture amplitude; round spermatids
    carry an acrosome (protein only, coverage 0) on their luminal side; ``ld`` (m, 5) =
    x, y, r, z, density; ``pd`` (k, 4) = x, y, r, z.
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

    def add(x, y, a, bb, ang, cw, dna, prot, tex=TEX_NONE) -> None:
        n = np.size(x)
        nuc.append(np.column_stack([x, y, np.broadcast_to(a, n), np.broadcast_to(bb, n),
                                    np.broadcast_to(ang, n), np.broadcast_to(cw, n),
                                    np.broadcast_to(dna, n), np.broadcast_to(prot, n),
                                    np.broadcast_to(tex, n)]))

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
            tangent(phi[ok]), 1.0, rng.uniform(0.14, 0.2, n), 0.2, TEX_MYOID)
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
            rng.uniform(0.08, 0.12, n), 0.2, TEX_SERTOLI)
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
                tangent(phi) + rng.normal(0, 0.15, n), 1.0, rng.uniform(0.15, 0.26, n), 0.2,
                TEX_SPG)
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
            tex = np.where(pyk, TEX_PYK, TEX_SPC)[keep]
            add(x[keep], y[keep], r[keep], (r * rng.uniform(0.88, 1.0, n))[keep],
                rng.uniform(0, math.pi, n)[keep], 1.0, dna[keep], 0.2, tex)
    # round spermatids: rows up to the lumen
    if "round_spermatids" in germ:
        d0 = 41.0
        while d0 + 4.0 < epi_h:
            dep, phi = ring(d0, 7.8, 1.0)
            if phi.size:
                x, y, rho = place(dep, phi)
                n = phi.size
                r = rng.uniform(2.5, 3.0, n)
                keep = rng.uniform(size=n) < 0.9 * st.germ_keep
                add(x[keep], y[keep], r[keep], r[keep], 0.0, 1.0,
                    rng.uniform(0.22, 0.3, n)[keep], 0.2, TEX_RSPT)
                # acrosome: a flat protein cap on the nucleus, facing the lumen
                xa, ya = t.to_world(rho[keep] - r[keep] + 0.4, phi[keep])
                add(xa, ya, 0.75 * r[keep], 0.6, tangent(phi[keep]), 0.0, 0.0, 0.15)
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
                rng.uniform(0.6, 0.8, k), 0.35, TEX_ESPT)
    if st.lumen_sperm > 0:
        k = int(rng.poisson(st.lumen_sperm))
        rr = t.lumen_um * 0.8 * np.sqrt(rng.uniform(size=k))
        x, y = t.to_world(rr, rng.uniform(0, 2 * math.pi, k))
        add(x, y, 2.2, 1.4, rng.uniform(0, math.pi, k), 1.0, rng.uniform(0.6, 0.8, k), 0.35,
            TEX_ESPT)
    nuc_arr = np.concatenate(nuc) if nuc else np.empty((0, NUC_COLS))

    # ---- lipid droplets (Sertoli associated: basal, clustered) ----
    a_epi = math.pi * ratio * ((b - t.wall_um) ** 2 - t.lumen_um ** 2)
    ld = droplets(g, rng, t, a_epi, t.droplet_area_fraction, t.droplet_diameter_um,
                  c.droplet_diameter_sigma, nuc_arr, basal=st.droplets_basal)
    dens = t.droplet_density * rng.uniform(0.95, 1.05, ld.shape[0])
    ld = np.column_stack([ld, dens])
    # ---- protein droplets (SPT) ----
    pd = droplets(g, rng, t, a_epi, t.protein_droplet_area_fraction, 1.8, 0.3, nuc_arr,
                  basal=False, dmin=1.0, dmax=3.0)
    if t.contacts:  # flattened against neighbours: drop what the flattening cut off
        myoid = nuc_arr[:, 8] == TEX_MYOID
        nuc_arr = nuc_arr[_in_flattened(g, t, nuc_arr[:, 0], nuc_arr[:, 1],
                                        nuc_arr[:, 3], myoid)]
        ld = ld[_in_flattened(g, t, ld[:, 0], ld[:, 1], ld[:, 2] + 0.2)]
        pd = pd[_in_flattened(g, t, pd[:, 0], pd[:, 1], pd[:, 2] + 0.2)]
    return {"nuc": nuc_arr, "ld": ld, "pd": pd}


def _in_flattened(g: SectionGeometry, t: Tubule, x: NDArray, y: NDArray, r: NDArray,
                  membrane: NDArray | None = None) -> NDArray[np.bool_]:
    """Which objects (centres x, y, half size ``r`` um) a flattened tubule keeps: those
    where the flattening did not reach, and those still ``r`` below the local lamina
    propria of the flattened outline; ``membrane`` marks objects of the lamina propria
    (myoid cells), kept only where the outline is not flattened."""
    if x.size == 0:
        return np.ones(0, bool)
    d = t.depth_at(x, y)
    cut = t.b_um - t.radius_at(x, y) - d > 0.5  # the flattening reaches here
    ok = ~cut | (d - g.wall_at(t, x, y) > r)
    if membrane is not None:
        ok &= ~(cut & membrane)
    return ok


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
    w, lum = g.wall_and_lumen_at(t, x, y)
    # keep inside the epithelium: below the local membrane, above the local lumen
    rho = np.minimum(rho, b - w - r - 0.3)
    rho = np.maximum(rho, lum + r + 0.3)
    x, y = t.to_world(rho, phi)
    ok = rho < b - w - r - 0.2
    cov = nuc[:, 5] > 0
    if cov.sum() >= 8:
        tree = cKDTree(nuc[cov, :2])
        # neighbours beyond the largest a + r can never hit: the bound only prunes the
        # search (missing neighbours come as inf, index n: a padded radius, never < inf)
        na = nuc[cov, 2]
        dist, idx = tree.query(np.column_stack([x, y]), k=8,
                               distance_upper_bound=float(na.max() + r.max()) + 1.0)
        ok &= ~np.any(dist < np.append(na, 0.0)[idx] + r[:, None], axis=1)
    keep = np.flatnonzero(ok)[:n]
    return np.column_stack([x, y, r, z])[keep]
