"""Frozen section of human seminiferous tubules (testis biopsy), procedural and lazy:
:class:`TestisSection` renders any window of it.

Anatomy and the numbers behind it: docs/physics-notes.md (testis phantom). World
coordinates are stage micrometres; the section is a few millimetres across with an
irregular outline and tears (holes). Nothing is built for the whole section: the geometry
(:mod:`.geometry`), each tubule's contents and Leydig clusters
(:mod:`.contents`) are generated on demand and kept in small LRU caches. Cells and droplets
(spheres) stay round while the tubule layers stretch with the oblique cut.

Tubule states (the paper's rules, per tubule; a patient mixes them, its phenotype names
the dominant one: :data:`~.config.STATES`, :data:`~.config.MIXTURE_MEANS`):

``complete``
    full spermatogenesis, thin lamina propria, many large lipid droplets (LDs).
``hypo``
    all germ cells but fewer, slightly thicker wall.
``arrest_spt``
    arrest at the spermatocyte stage: no spermatids, thick truncated lamina propria,
    fewer, smaller, denser LDs, plus protein droplets (1-3 um).
``arrest_spg``
    arrest at the spermatogonial stage: thin epithelium, almost no LDs.
``sco``
    Sertoli-cell-only: small tubules, no germ cells, empty lumen, thick hyaline wall.
    Sertoli cells keep some LDs spread over their height.
``sclerotic``
    hyalinised: shrunken tubule, very thick wall, hardly any epithelium or lumen.

Interstitial fibrosis, Leydig clusters and the section's artefacts are patient-level.

Collagen (:mod:`.collagen`): the lamina propria as wavy concentric lamellae whose fibres run
round the tubule, loose fibres along the texture ridges of the interstitium; their in-plane
direction is :attr:`Composition.fibre_angle` and the patient's ``shg_rho`` its
:attr:`Composition.shg_rho` (the SHG's polarisation dependence: docs/physics-notes.md).

Truth labels: :class:`Label.LIPID_DROPLET` where the droplet's in-focus volume fraction
(``sphere_map`` partial volume) is >= 0.25, so sub-resolution or out-of-focus droplets stay
unlabelled.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
from numpy.typing import NDArray

from simulators.errors import SettingsError
from simulators.optics import SRS_AXIAL_FWHM_UM
from simulators.specimens._raster import noise_grid, sphere_map
from simulators.specimens.base import Composition, Label, Specimen, Window
from simulators.specimens.testis.collagen import (
    LAMELLA_CONTRAST,
    fibre_angle,
    lamellae,
    texture_and_differences,
)
from simulators.specimens.testis.config import STATES, TestisConfig, check_phenotype
from simulators.specimens.testis.contents import (
    EPI,
    INT,
    LIPID_LABEL_MIN,
    NUC,
    NUC_COLS,
    PDROP,
    WALL,
    tubule_contents,
)
from simulators.specimens.testis.geometry import N_TEX, N_WALL, SectionGeometry, Tubule
from simulators.specimens.testis.interstitium import (
    LEY,
    MAC,
    grid_cells,
    interstitial_cells,
    vessel_neighbours,
    vessels,
)
from simulators.specimens.testis.preparation import SectionPreparation
from simulators.specimens.testis.stamp import (
    stamp_cells,
    stamp_nuclei,
    stamp_vessels,
)
from simulators.spectra import SPECIES
from simulators.threads import worker_pool

_F32 = np.float32


def _cat(parts: list[NDArray], width: int) -> NDArray:
    parts = [q for q in parts if q.shape[0]]
    return np.concatenate(parts) if parts else np.empty((0, width))


def _clear(comp: Composition) -> None:
    arrays: tuple[NDArray, ...] = (*comp.concentrations.values(), comp.chi2, comp.pigment,
                                    comp.labels, comp.instance, comp.heme)
    for v in arrays:
        v[...] = 0
    if comp.fibre_angle is not None:
        comp.fibre_angle[...] = np.nan  # no collagen, no direction


def _pool() -> ThreadPoolExecutor:
    """This module's worker pool (:func:`simulators.threads.worker_pool`)."""
    return worker_pool("testis-render", max(2, min(8, os.cpu_count() or 2)))


def _spheres(window: Window, sph: NDArray, split_um: float = 0.6) -> NDArray[np.float32]:
    """``sphere_map`` of rows (x, y, r, z, weight), in two size groups.

    ``sphere_map`` sizes every sphere's pixel box by the largest radius; calling it once
    for the small (r <= ``split_um``) and once for the large spheres halves the work.
    """
    small = sph[:, 2] <= split_um
    out = None
    for part in (sph[small], sph[~small]):
        if part.shape[0]:
            m = sphere_map(window, part[:, 0], part[:, 1], part[:, 2],
                           fwhm_z_um=SRS_AXIAL_FWHM_UM, z_um=part[:, 3], weights=part[:, 4])
            if out is None:
                out = m
            else:
                out += m
    assert out is not None
    return out


def _touching(spheres: NDArray, window: Window) -> NDArray:
    """Rows (x, y, r, ...) of ``spheres`` whose disc can touch the window's pixels."""
    x0, x1, y0, y1 = window.extent_um
    p = window.pixel_um
    x, y, r = spheres[:, 0], spheres[:, 1], spheres[:, 2] + p
    return spheres[(x + r > x0) & (x - r < x1) & (y + r > y0) & (y - r < y1)]


_SCRATCH_LOCK = threading.Lock()
#: free sets of scratch arrays, (shape, {name: array}); at most _SCRATCH_KEEP are kept
_SCRATCH_FREE: list[tuple[tuple[int, int], dict[str, NDArray]]] = []
_SCRATCH_KEEP = 2
#: windows larger than this (pixels) render with fresh temporaries and keep none
_SCRATCH_MAX_PX = 2_000_000


def _scratch_acquire(shape: tuple[int, int]) -> dict[str, NDArray]:
    """A set of scratch arrays of ``shape`` not in use by another render (a kept one, or a
    new empty set); give it back with :func:`_scratch_release`.

    Reusing the renderer's full-frame temporaries spares the kernel's page faults on fresh
    memory (~20 % of a render's CPU time otherwise); the numbers are the same. The sets are
    shared by all threads (a band takes one for its render), so memory stays bounded by
    the renders running at once plus ``_SCRATCH_KEEP`` kept sets of at most
    ``_SCRATCH_MAX_PX`` pixels (~100 MB each at the limit).
    """
    with _SCRATCH_LOCK:
        for k, (sh, arrays) in enumerate(_SCRATCH_FREE):
            if sh == shape:
                del _SCRATCH_FREE[k]
                return arrays
    return {}


def _scratch_release(shape: tuple[int, int], arrays: dict[str, NDArray]) -> None:
    """Keep a set from :func:`_scratch_acquire` for a later render (dropping the oldest)."""
    if shape[0] * shape[1] > _SCRATCH_MAX_PX:
        return
    with _SCRATCH_LOCK:
        _SCRATCH_FREE.append((shape, arrays))
        del _SCRATCH_FREE[:-_SCRATCH_KEEP]


def _scratch(shape: tuple[int, int], arrays: dict[str, NDArray]) -> Callable[..., NDArray]:
    """``buf(name, dtype=float32)``: the scratch array ``name`` of ``shape`` in ``arrays``
    (made on first use; contents undefined: every use overwrites it)."""
    def buf(name: str, dtype: type = _F32) -> NDArray:
        a = arrays.get(name)
        if a is None or a.dtype != dtype:
            a = arrays[name] = np.empty(shape, dtype)
        return a
    return buf


def _gather(table: NDArray, owner: NDArray, out: NDArray) -> NDArray:
    """``table[owner]`` into ``out`` (owner's indices are all valid: 'wrap' only skips the
    bounds check's buffering)."""
    return np.take(table, owner, out=out, mode="wrap")


class TestisSection(Specimen):
    """Human testis frozen section: seminiferous tubules, interstitium, Leydig cells.

    Parameters
    ----------
    seed : int
        Specimen seed; with ``phenotype`` it also draws the patient
        (:meth:`TestisConfig.draw`).
    phenotype : str
        One of :data:`PHENOTYPES`.
    config : TestisConfig, optional
        Explicit patient parameters (its ``phenotype`` must equal ``phenotype``).
    threads : int, optional (keyword)
        Row bands rendered in parallel for windows of >= 250k pixels; default
        ``min(2, cpu_count)``. Results do not depend on it (beyond float rounding).

    Notes
    -----
    Rendering cost is proportional to the window, never to the section (timings:
    docs/benchmarks.md).
    """

    kind = "testis"
    __test__ = False  # not a pytest test class despite the name

    def __init__(self, seed: int, phenotype: str = "normal",
                 config: TestisConfig | None = None, *, threads: int | None = None) -> None:
        super().__init__(seed)
        if threads is None:
            threads = min(2, os.cpu_count() or 1)
        if int(threads) != threads or threads < 1:
            raise SettingsError(f"threads must be an integer >= 1, got {threads!r}")
        #: row bands rendered in parallel for windows of >= 250k pixels (1: no threads)
        self.threads = int(threads)
        check_phenotype(phenotype)
        if config is None:
            config = TestisConfig.draw(phenotype, self.seed)
        elif not isinstance(config, TestisConfig):
            raise SettingsError(f"config must be a TestisConfig, got {type(config).__name__}")
        elif config.phenotype != phenotype:
            raise SettingsError(f"config phenotype {config.phenotype!r} differs from "
                                f"phenotype {phenotype!r}; pass the same one")
        self.phenotype = phenotype
        self.config = config
        #: outline, tears and tubule packing (:class:`~.geometry.SectionGeometry`)
        self.geometry = g = SectionGeometry(self.seed, config)
        #: section thickness map: wedge, knife chatter, folds (preparation, not histology)
        self.preparation = SectionPreparation.draw(
            config.section_thickness_um, config.artefact_seed, config.center_um,
            config.section_radii_um)
        # per-instance caches (deterministic, so eviction never changes results)
        self._contents = functools.lru_cache(maxsize=128)(
            lambda i, j: tubule_contents(g, i, j))
        self._vessels = functools.lru_cache(maxsize=512)(lambda i, j: vessels(g, i, j))

        # the grid cells whose vessels the cells of a grid cell may meet
        kn = vessel_neighbours(config)

        def cells_of(i: int, j: int) -> dict[str, NDArray]:
            near = [self._vessels(i + di, j + dj)["vessels"]
                    for dj in range(-kn, kn + 1) for di in range(-kn, kn + 1)]
            return interstitial_cells(g, i, j, _cat(near, 7))
        self._cells = functools.lru_cache(maxsize=512)(cells_of)

    @property
    def extent_um(self) -> tuple[float, float, float, float]:
        """(x_min, x_max, y_min, y_max): bounding box of all tissue (um)."""
        return self.geometry.extent_um

    def thickness_map(self, window: Window) -> NDArray[np.float32]:
        """Local section thickness (um): wedge, knife chatter and folds of the patient's
        preparation (:class:`~.preparation.SectionPreparation`, keyed by ``artefact_seed``)."""
        return self.preparation.thickness(window)

    def thickness_floor_um(self, window: Window) -> float:
        """Lower bound of :meth:`thickness_map` over the window (um)."""
        return self.preparation.floor_um(window)

    @property
    def nominal_thickness_um(self) -> float:
        """``config.section_thickness_um``."""
        return float(self.config.section_thickness_um)

    def tissue_at(self, x: NDArray, y: NDArray) -> NDArray[np.bool_]:
        """True where world points (um) lie in the section outline and not in a hole."""
        return self.geometry.tissue_at(x, y)

    def tubules_in(self, x0: float, x1: float, y0: float, y1: float) -> list[Tubule]:
        """Tubules whose outline's bounding box meets the world box (um), by id."""
        return self.geometry.tubules_in(x0, x1, y0, y1)

    # ------------------------------------------------------------------ rendering
    def render(self, window: Window) -> Composition:
        """Ground truth of ``window`` (see module docstring); float32 maps, shape (ny, nx).

        Cost is proportional to the window's pixels and the objects it shows: tubules,
        contents and Leydig clusters come from the caches; nothing section-wide is built.
        Large windows are rendered as row bands on :attr:`threads` threads (numpy releases
        the GIL); a band renders exactly what the same pixels render in any other window.
        """
        full = ("lipid", "protein", "collagen", "water")  # written in full: no zeroing
        shape = window.shape
        comp = Composition(
            window, {s: (np.empty if s in full else np.zeros)(shape, _F32) for s in SPECIES},
            chi2=np.empty(shape, _F32), pigment=np.zeros(shape, _F32),
            labels=np.empty(shape, np.uint8), instance=np.zeros(shape, np.int32),
            heme=np.zeros(shape, _F32),
            fibre_angle=np.empty(shape, _F32), shg_rho=self.config.shg_rho)
        nb = self.threads if window.nx * window.ny >= 250_000 else 1
        nb = max(1, min(nb, window.ny // 64))
        if nb == 1:
            self._render_into(window, comp)
            return comp
        edges = np.linspace(0, window.ny, nb + 1).round().astype(int)
        jobs = []
        for r0, r1 in zip(edges[:-1], edges[1:]):
            sub = Window(window.x_um, window.y_um + r0 * window.pixel_um, window.nx,
                         int(r1 - r0), window.pixel_um)
            rs = slice(int(r0), int(r1))
            assert comp.fibre_angle is not None
            jobs.append((sub, Composition(sub, {k: v[rs] for k, v in comp.concentrations.items()},
                                          comp.chi2[rs], comp.pigment[rs], comp.labels[rs],
                                          comp.instance[rs], heme=comp.heme[rs],
                                          fibre_angle=comp.fibre_angle[rs],
                                          shg_rho=comp.shg_rho)))
        for f in [_pool().submit(self._render_into, *job) for job in jobs]:
            f.result()
        return comp

    def _render_into(self, window: Window, comp: Composition) -> None:
        """Render ``window`` into ``comp``'s arrays (dna, pigment, heme, instance arrive
        zeroed), with a set of scratch arrays (:func:`_scratch_acquire`)."""
        arrays = _scratch_acquire(window.shape)
        try:
            self._render_with(window, comp, _scratch(window.shape, arrays))
        finally:
            _scratch_release(window.shape, arrays)

    def _render_with(self, window: Window, comp: Composition,
                     buf: Callable[..., NDArray]) -> None:
        """:meth:`_render_into` with the scratch arrays ``buf`` (:func:`_scratch`)."""
        g = self.geometry
        x0, x1, y0, y1 = window.extent_um
        ex0, ex1, ey0, ey1 = g.extent_um
        if x1 <= ex0 or x0 >= ex1 or y1 <= ey0 or y0 >= ey1:
            return _clear(comp)
        c = self.config
        p = window.pixel_um
        shape = window.shape
        tissue_sec = g.section_coverage(window)
        if tissue_sec is not None and not tissue_sec.any():
            return _clear(comp)
        cells = g.cells(x0, x1, y0, y1, g.reach_um)
        tubs = [t for t in (g.tubule(i, j) for i, j in cells) if t is not None
                and t.cx_um + t.half_extent_um[0] > x0 - p
                and t.cx_um - t.half_extent_um[0] < x1 + p
                and t.cy_um + t.half_extent_um[1] > y0 - p
                and t.cy_um - t.half_extent_um[1] < y1 + p]
        conc = comp.concentrations
        chi2, pigment, labels = comp.chi2, comp.pigment, comp.labels
        # 0..1, ~3.5 um grain (a view), and its differences for the fibre directions
        tex, *tex_diff = texture_and_differences(window, g.noise_seed(N_TEX), 3.5)
        nw = noise_grid(window, g.noise_seed(N_WALL), 30.0)  # 0..1, ~30 um
        inv_p = 1.0 / p
        tmp = buf("tmp")  # (buf: full-frame temporaries, reused across renders)

        # ---- tubule fields: depth below each outline (flattened against its contacts,
        # Tubule.depth_at, in float32); owner = the tubule of greatest depth, rad = its r'
        depth = buf("depth")
        depth.fill(-1e3)
        rad = buf("rad")
        rad.fill(1e3)
        owner = buf("owner", np.intp)  # intp: gathers need no index conversion
        owner.fill(0)
        xs, ys = window.xs(), window.ys()

        for k, t in enumerate(tubs, 1):
            ex, ey = t.half_extent_um
            sl = window.pixel_slices(t.cx_um - ex - p, t.cx_um + ex + p,
                                     t.cy_um - ey - p, t.cy_um + ey + p)
            if sl is None:
                continue
            rs, cs = sl
            dx = xs[cs] - t.cx_um
            dy = ys[rs] - t.cy_um
            ca, sa = math.cos(t.angle_rad), math.sin(t.angle_rad)
            i2, b2 = 1.0 / t.axis_ratio ** 2, t.b_um ** 2
            qa = (ca * ca * i2 + sa * sa) / b2
            qc = (sa * sa * i2 + ca * ca) / b2
            qb = 2.0 * ca * sa * (i2 - 1.0) / b2
            rt = np.multiply.outer(dy.astype(_F32), (qb * dx).astype(_F32))
            rt += (qa * dx * dx).astype(_F32)[None, :]
            rt += (qc * dy * dy).astype(_F32)[:, None]
            np.sqrt(rt, out=rt)
            rt *= _F32(t.b_um)  # r' (um)
            dt = np.subtract(_F32(t.b_um), rt)
            for nx, ny, off in t.contacts:  # flat faces: off - n.(x - c)
                face = np.add.outer((off - ny * dy).astype(_F32), (-nx * dx).astype(_F32))
                np.minimum(dt, face, out=dt)
            m = dt > depth[sl]
            np.copyto(depth[sl], dt, where=m)
            np.copyto(rad[sl], rt, where=m)
            np.copyto(owner[sl], k, where=m)
        wall_tbl = np.array([0.0] + [t.wall_um for t in tubs], _F32)
        lum_tbl = np.array([0.0] + [t.lumen_um for t in tubs], _F32)

        def tubule_tbl(name: str, outside: float = 0.0) -> NDArray[np.float32]:
            """The tubules' parameter ``name`` by owner index (0: ``outside``)."""
            return np.array([outside] + [getattr(t, name) for t in tubs], _F32)

        def state_tbl(name: str, outside: float = 0.0) -> NDArray[np.float32]:
            """The tubules' state parameter ``name`` by owner index (0: ``outside``)."""
            return np.array([outside] + [getattr(STATES[t.state], name) for t in tubs], _F32)

        def per_tubule(name: str, outside: float = 0.0) -> NDArray[np.float32]:
            """Per-pixel value of the owning tubule's parameter ``name``."""
            return _gather(tubule_tbl(name, outside), owner, buf("param"))
        # local lamina propria thickness (same formula as _wall_local, float32)
        # (per tubule: wall (1 + var (1 - 2 nw)) + infold (2 tex - 1))
        wall = _gather(wall_tbl, owner, buf("wall"))
        np.multiply(nw, -2.0, out=tmp)
        tmp += 1.0
        tmp *= per_tubule("wall_variation")
        tmp += 1.0
        wall *= tmp
        if any(t.infolding_um > 0 for t in tubs):
            np.multiply(tex, 2.0, out=tmp)
            tmp -= 1.0
            tmp *= per_tubule("infolding_um")
            wall += tmp
        gap = None
        if any(t.gap_fraction > 0 for t in tubs):
            gap = np.subtract(nw, per_tubule("gap_level", 2.0), out=buf("gap"))
            gap *= 25.0
            np.clip(gap, 0.0, 1.0, out=gap)
            np.subtract(c.gap_wall_um, wall, out=tmp)
            np.minimum(tmp, 0.0, out=tmp)
            tmp *= gap
            wall += tmp
        np.maximum(wall, 1.0, out=wall)
        lum = _gather(lum_tbl, owner, buf("lum"))
        np.multiply(nw, 2.0, out=tmp)
        tmp -= 1.0
        tmp *= per_tubule("lumen_irregularity")
        tmp += 1.0
        lum *= tmp
        # cumulative class ramps (anti-aliased over one pixel)
        A = np.multiply(depth, inv_p, out=buf("A"))  # inside the tubule outline
        A += 0.5
        np.clip(A, 0.0, 1.0, out=A)
        B = np.subtract(depth, wall, out=buf("B"))  # past the lamina propria
        B *= inv_p
        B += 0.5
        np.clip(B, 0.0, 1.0, out=B)
        C = np.subtract(lum, rad, out=buf("C"))  # inside the lumen
        C *= inv_p
        C += 0.5
        np.clip(C, 0.0, 1.0, out=C)
        np.minimum(C, B, out=C)  # a flattened face never cuts into the lumen

        # ---- base materials: s = I + A (W - I) + B (E - W) + C (L - E)
        # interstitium I, lamina propria W, epithelium E, lumen L
        # lumen content by state (Sertoli-cell-only / sclerotic: empty, watery)
        # the lumen term C (L - E) only on the pixels with C > 0 (elsewhere it adds a zero,
        # and the interstitial term I != 0 added last makes the sum the same)
        o_flat = owner.reshape(-1)
        ci = np.flatnonzero(C != 0)
        c_ci = C.reshape(-1)[ci]
        for s in ("lipid", "water"):
            ii, ww, ee = INT[s], WALL[s], EPI[s]
            out = conc[s]
            np.multiply(A, ww - ii, out=out)
            np.multiply(B, ee - ww, out=tmp)
            out += tmp
            if s == "lipid":
                lt = np.multiply(c_ci, -ee)
            else:
                lt = np.subtract(state_tbl("lumen_water").take(o_flat[ci]), ee)
                lt *= c_ci
            f = out.reshape(-1)
            f[ci] += lt
            out += ii
        # protein: epithelium textured E = 0.24 (0.8 + 0.4 tex)
        e0, e1 = 0.8 * EPI["protein"], 0.4 * EPI["protein"]
        out = conc["protein"]
        np.multiply(tex, e1, out=out)
        out += e0 - WALL["protein"]  # E - W
        out *= B
        ny_, nx_ = shape
        r_ci = ci // nx_
        lt = np.multiply(tex[r_ci, ci - r_ci * nx_], -e1)
        lt += state_tbl("lumen_protein").take(o_flat[ci])
        lt -= e0  # L - E
        lt *= c_ci
        f = out.reshape(-1)
        f[ci] += lt
        np.multiply(A, WALL["protein"] - INT["protein"], out=tmp)
        out += tmp
        out += INT["protein"]
        del ci, c_ci, r_ci, lt
        # fibrous interstitial texture: thin ridges of the fine noise, modulated by nw
        fib = np.subtract(tex, 0.5, out=buf("fib"))
        np.abs(fib, out=fib)
        fib *= -2.0
        fib += 1.0
        fib *= fib
        fib *= fib
        np.add(nw, 0.5, out=tmp)
        fib *= tmp
        # collagen: I = ic (0.4 + 1.2 fib), W = wc texc, E = L = 0 -> I (1 - A) + A W - B W
        out = conc["collagen"]
        np.multiply(fib, 1.2 * c.interstitial_collagen, out=out)
        out += 0.4 * c.interstitial_collagen
        np.subtract(1.0, A, out=tmp)
        out *= tmp
        # the lamina propria's terms only where its weight A - B is not 0 (elsewhere they
        # add a zero to sums that are >= +0)
        np.subtract(A, B, out=tmp)  # lamina propria weight
        wi = np.flatnonzero(tmp != 0)
        o_wi = o_flat[wi]
        r_wi = wi // nx_
        tex_wi = tex[r_wi, wi - r_wi * nx_]
        # wavy concentric lamellae (collagen.lamellae), hyalinised walls less lamellar
        lam_tbl = np.array([0.0] + [LAMELLA_CONTRAST[t.state] for t in tubs], _F32)
        lam = lamellae(depth.reshape(-1)[wi], tex_wi, lam_tbl.take(o_wi))
        lam *= tmp.reshape(-1)[wi]  # lamina propria weight x lamellar profile
        texc = np.multiply(tex_wi, 0.4, dtype=_F32)
        texc += 0.8  # 0.8..1.2
        colw = np.multiply(texc, tubule_tbl("wall_collagen").take(o_wi), dtype=_F32)
        colw *= lam
        f = out.reshape(-1)
        f[wi] += colw
        # chi2: I = ichi (0.2 + 1.6 fib), W = wchi (0.7 + 0.6 tex) (1 - 0.85 gap)
        np.multiply(fib, 1.6 * c.interstitial_chi2, out=chi2)
        chi2 += 0.2 * c.interstitial_chi2
        np.subtract(1.0, A, out=fib)
        chi2 *= fib
        np.multiply(tex_wi, 0.6, out=colw)
        colw += 0.7
        colw *= tubule_tbl("wall_chi2").take(o_wi)
        if gap is not None:
            g_wi = gap.reshape(-1)[wi]
            g_wi *= -0.85
            g_wi += 1.0
            colw *= g_wi
        colw *= lam
        f = chi2.reshape(-1)
        f[wi] += colw
        np.clip(chi2, 0.0, 1.0, out=chi2)
        del fib, colw, lam, wi, o_wi, r_wi, tex_wi, texc
        # fibre directions: round the tubules in the walls, along the ridges outside
        if comp.fibre_angle is not None:
            cx_tbl = np.array([0.0] + [t.cx_um for t in tubs], _F32)
            cy_tbl = np.array([0.0] + [t.cy_um for t in tubs], _F32)
            np.add(rad, 1e-3, out=tmp)
            np.divide(A, tmp, out=tmp)  # weight of the radial direction (1/um)
            fibre_angle(window, tmp, _gather(cx_tbl, owner, buf("cx")),
                        _gather(cy_tbl, owner, buf("cy")),
                        (tex_diff[0], tex_diff[1]), out=comp.fibre_angle)
            del tex_diff

        # ---- labels of the base classes
        labels[:] = Label.INTERSTITIUM
        if tubs:
            np.putmask(labels, A >= 0.5, Label.COLLAGEN)
            np.putmask(labels, B >= 0.5, Label.CYTOPLASM)
            np.putmask(labels, C >= 0.5, Label.LUMEN)

        # ---- objects from the tubules and the interstitium near the window
        nuc_parts, ld_parts, pd_parts, lf_parts, cell_parts = [], [], [], [], []
        ves_parts, rbc_parts = [], []
        for t in tubs:
            cont = self._contents(*t.cell)
            assert cont is not None  # tubs holds only hash cells that have a tubule
            nuc_parts.append(cont["nuc"])
            ld_parts.append(cont["ld"])
            pd_parts.append(cont["pd"])
        for i, j in grid_cells(c, x0 - 2 * p, x1 + 2 * p, y0 - 2 * p, y1 + 2 * p):
            ves = self._vessels(i, j)
            ves_parts.append(ves["vessels"])
            rbc_parts.append(ves["rbc"])
            nuc_parts.append(ves["nuc"])
            ley = self._cells(i, j)
            cell_parts.append(ley["cells"])
            nuc_parts.append(ley["nuc"])
            ld_parts.append(ley["ld"])
            lf_parts.append(ley["lf"])
        heme = comp.heme
        stamp_vessels(window, comp, _cat(ves_parts, 7), _cat(rbc_parts, 7))
        # Leydig cells and macrophages over the interstitium, then all nuclei
        cl = _cat(cell_parts, 6)
        mac = cl[:, 5] >= 0.5
        stamp_cells(window, comp, cl[~mac], LEY, c.leydig_pigment)
        stamp_cells(window, comp, cl[mac], MAC)
        stamp_nuclei(window, comp, _cat(nuc_parts, NUC_COLS), NUC, tex)
        # spheres: composite only the pixels they touch
        flat = {k: v.reshape(-1) for k, v in conc.items()}
        chi2f, pigf, labf = chi2.reshape(-1), pigment.reshape(-1), labels.reshape(-1)
        pdd = _touching(_cat(pd_parts, 4), window)
        if pdd.shape[0]:  # protein droplets (SPT)
            cm = sphere_map(window, pdd[:, 0], pdd[:, 1], pdd[:, 2],
                            fwhm_z_um=SRS_AXIAL_FWHM_UM, z_um=pdd[:, 3]).reshape(-1)
            idx = np.flatnonzero(cm != 0)  # (a bool mask: faster than a float one)
            cv = np.minimum(cm[idx], 1.0)
            keep = 1.0 - cv
            for s in ("protein", "lipid", "water"):
                flat[s][idx] = flat[s][idx] * keep + cv * PDROP[s]
            for s in ("dna", "collagen"):
                flat[s][idx] *= keep
            chi2f[idx] *= keep
            labf[idx[cv >= 0.5]] = Label.PROTEIN_DROPLET
        ldd = _touching(_cat(ld_parts, 5), window)
        if ldd.shape[0]:  # lipid droplets: weights = lipid density
            lm = _spheres(window, ldd).reshape(-1)
            idx = np.flatnonzero(lm != 0)
            lv = lm[idx]
            dens_tbl = np.array([c.leydig_droplet_density]
                                + [t.droplet_density for t in tubs], _F32)
            ref = np.where(A.reshape(-1)[idx] >= 0.5, dens_tbl[owner.reshape(-1)[idx]],
                           c.leydig_droplet_density)
            cv = lv / ref  # in-focus volume fraction of the droplet
            over = np.maximum(cv, 1.0)
            cv /= over
            lv /= over
            keep = 1.0 - cv
            flat["lipid"][idx] = flat["lipid"][idx] * keep + lv
            for s in ("protein", "water", "dna", "collagen"):
                flat[s][idx] *= keep
            chi2f[idx] *= keep
            pigf[idx] *= keep
            heme.reshape(-1)[idx] *= keep
            labf[idx[cv >= LIPID_LABEL_MIN]] = Label.LIPID_DROPLET
        lf = _touching(_cat(lf_parts, 5), window)
        if lf.shape[0]:  # lipofuscin granules (transient absorption)
            pigment += sphere_map(window, lf[:, 0], lf[:, 1], lf[:, 2],
                                  fwhm_z_um=SRS_AXIAL_FWHM_UM, z_um=lf[:, 3],
                                  weights=lf[:, 4])

        # ---- instance ids, then the tissue mask (section outline, tears)
        if tubs:
            id_tbl = np.array([0] + [t.id for t in tubs], np.int32)
            inst = _gather(id_tbl, owner, buf("inst", np.int32))
            np.putmask(inst, A < 0.5, 0)
            comp.instance[:] = inst
        tissue = tissue_sec
        holes = g.hole_coverage(window)
        if holes is not None:
            np.subtract(1.0, A, out=tmp)
            holes *= tmp
            np.subtract(1.0, holes, out=holes)
            tissue = holes if tissue is None else tissue * holes
        if tissue is not None:
            part = tissue < 1.0
            rows, cols = np.flatnonzero(part.any(axis=1)), np.flatnonzero(part.any(axis=0))
            if rows.size:
                sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
                ts = tissue[sl]
                for v in (*conc.values(), chi2, pigment, heme):
                    v[sl] *= ts
                out_m = ts < 0.5
                labels[sl][out_m] = Label.BACKGROUND
                comp.instance[sl][out_m] = 0
