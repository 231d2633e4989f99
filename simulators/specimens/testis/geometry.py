"""Geometry of a testis section: its outline and tears, the staggered lattice of tubules
and each tubule's profile (oblique cut of a cylinder), lamina propria and lumen.

Tubules sit one per cell of a staggered, jittered lattice and are generated on demand from
their own generator (``rng_for(stream, i, j)``); each draws its spermatogenic state from
the patient's mixture (:data:`~simulators.specimens.testis.config.STATES`), which sets its
size, wall, epithelium and droplets, and is shrunk so that it keeps the interstitial gap
from its neighbours. Generators and histology noise are keyed by the seed and the
phenotype; the outline and tears by the patient's ``artefact_seed``. Fields that are not
objects (wall thickness variation, lumen outline, section outline, tears) are value noise
on world-aligned lattices, so any window renders the same values for the same world point.

An oblique cut of a cylinder of radius ``b`` is an ellipse with semi-axes
``a = ratio * b`` and ``b``. Layers (lamina propria, epithelium, lumen) are laid out in the
*unstretched* frame (``u / ratio, v``), i.e. at depth ``b - r'`` from the outer surface, so
they stretch with the cut like the real wall does.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from numpy.typing import NDArray

from simulators.config import ConfigMixin
from simulators.specimens._raster import noise_grid, noise_level, noise_max, noise_points
from simulators.specimens.base import Window, keyed_rng
from simulators.specimens.testis.config import (
    MAX_DROPLET_DENSITY,
    PHENOTYPES,
    STATE_NAMES,
    STATES,
    TestisConfig,
)
from simulators.specimens.testis.lipids import (
    cycle_factor,
    draw_composition,
    droplet_density,
)

_F32 = np.float32
#: noise field ids (seed offsets)
N_WALL, N_TEX, N_SECTION, N_HOLE = 1, 4, 6, 7
#: rng stream of the tubules
S_TUBULE = 1


@dataclasses.dataclass(frozen=True)
class Tubule(ConfigMixin):
    """Geometry of one seminiferous-tubule profile (world um).

    ``a_um`` / ``b_um``: semi-major / semi-minor axes of the outer (lamina propria)
    outline, ``angle_rad`` the direction of ``a``; ``b_um`` is the true tubule radius (the
    cut stretches the profile by ``a/b`` along ``angle``). ``wall_um``: mean lamina propria
    thickness; ``lumen_um``: mean lumen radius (unstretched frame). ``id`` is the value in
    :attr:`Composition.instance`; ``cell`` the lattice indices it was generated from;
    ``elongated``: the profile is at a stage with elongated spermatids. ``state``: its
    spermatogenic state (:data:`~simulators.specimens.testis.config.STATES`), and the
    state's parameters as drawn for this tubule: ``wall_variation`` (relative local +-
    variation of the wall), ``gap_fraction`` (fraction of the circumference where the
    collagen is truncated), ``infolding_um``, ``wall_collagen`` / ``wall_chi2``,
    ``lumen_irregularity``, ``droplet_area_fraction``, ``droplet_diameter_um``,
    ``droplet_density`` (CH2 density of its LDs relative to triolein, from
    ``ld_composition``: fractions of :data:`~simulators.specimens.testis.lipids.CLASS_NAMES`),
    ``protein_droplet_area_fraction``.
    """

    id: int
    cell: tuple[int, int]
    cx_um: float
    cy_um: float
    a_um: float
    b_um: float
    angle_rad: float
    wall_um: float
    lumen_um: float
    elongated: bool
    state: str = "complete"
    wall_variation: float = 0.15
    gap_fraction: float = 0.0
    infolding_um: float = 0.5
    wall_collagen: float = 0.62
    wall_chi2: float = 0.45
    lumen_irregularity: float = 0.12
    droplet_area_fraction: float = 0.02
    droplet_diameter_um: float = 1.05
    droplet_density: float = 0.815
    protein_droplet_area_fraction: float = 0.0
    ld_composition: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0)

    @property
    def gap_level(self) -> float:
        """Wall-noise level above which the collagen is truncated (2: never)."""
        return noise_level(self.gap_fraction) if self.gap_fraction > 0 else 2.0

    @property
    def diameter_um(self) -> float:
        """True (unstretched) outer diameter, 2 b."""
        return 2.0 * self.b_um

    @property
    def axis_ratio(self) -> float:
        """a / b (1 for a transverse cut)."""
        return self.a_um / self.b_um

    def perimeter_um(self, inset_um: float = 0.0) -> float:
        """Ramanujan perimeter of the outline shrunk by ``inset_um`` in the unstretched frame."""
        r = self.a_um / self.b_um
        bb = self.b_um - inset_um
        a, b = r * bb, bb
        h = ((a - b) / (a + b)) ** 2
        return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))

    def to_world(self, rho: float | NDArray, phi: NDArray) -> tuple[NDArray, NDArray]:
        """World (x, y) of unstretched-frame polar points (radius ``rho`` um, angle ``phi``)."""
        u = self.axis_ratio * rho * np.cos(phi)
        v = rho * np.sin(phi)
        ca, sa = math.cos(self.angle_rad), math.sin(self.angle_rad)
        return self.cx_um + u * ca - v * sa, self.cy_um + u * sa + v * ca

    def radius_at(self, x: NDArray, y: NDArray) -> NDArray:
        """Unstretched-frame radius r' (um) of world points; depth from the outline is b - r'."""
        dx, dy = np.asarray(x) - self.cx_um, np.asarray(y) - self.cy_um
        ca, sa = math.cos(self.angle_rad), math.sin(self.angle_rad)
        u = (dx * ca + dy * sa) / self.axis_ratio
        v = -dx * sa + dy * ca
        return np.hypot(u, v)


class SectionGeometry:
    """Outline, tears and tubule lattice of one patient's section (world um).

    ``pitch_um`` / ``row_um``: lattice pitch and row spacing; ``reach_um``: how far from its
    lattice cell anything the cell generates (tubule outline, Leydig cluster) can reach;
    ``extent_um``: bounding box of all tissue. :meth:`tubule` is cached (deterministic, so
    eviction never changes results).
    """

    def __init__(self, seed: int, config: TestisConfig) -> None:
        self.seed = int(seed)
        self.config = c = config
        #: key of the patient (seed and phenotype) in every histology rng and noise field
        self.patient_key = PHENOTYPES.index(c.phenotype)
        self._cum = np.cumsum(c.state_weights)
        self.pitch_um = c.pitch_factor * c.tubule_diameter_um * c.mean_diameter_factor
        self.row_um = self.pitch_um * math.sqrt(3.0) / 2.0
        self.jitter_um = 0.1 * self.pitch_um
        #: largest true diameter a tubule of this patient can have (um): the physical
        #: limit, or the largest state factor x the scale + 4 sd
        self.d_max_um = min(c.diameter_range_um[1],
                            max(s.diameter_factor[1] for s in STATES.values())
                            * (c.tubule_diameter_um + 4.0 * c.tubule_diameter_sd_um))
        self.a_max_um = 0.5 * self.d_max_um * c.axis_ratio_max
        #: Leydig clusters stay within this of their cell's lattice voids (see
        #: :func:`simulators.specimens.testis.contents.leydig_clusters`)
        self.leydig_margin_um = (30.0 + 10.0 * math.sqrt(4.0 * c.leydig_cluster_cells + 1.0)
                                 + 10.0 * c.leydig_cell_scale + 2.0)
        self.reach_um = max(self.a_max_um, 0.5 * self.pitch_um + self.leydig_margin_um) + \
            self.jitter_um
        self.hole_level = noise_level(c.hole_fraction) if c.hole_fraction > 0 else 2.0
        cx, cy = c.center_um
        rx, ry = c.section_radii_um
        g = 1.0 + c.boundary_roughness
        self.extent_um = (cx - rx * g, cx + rx * g, cy - ry * g, cy + ry * g)
        self._imax = int(math.ceil(rx * g / self.pitch_um)) + 2
        self._jmax = int(math.ceil(ry * g / self.row_um)) + 2
        self._raw = functools.lru_cache(maxsize=8192)(self._make_raw)
        #: the tubule of lattice cell (i, j), or None (cached)
        self.tubule = functools.lru_cache(maxsize=8192)(self._make_tubule)

    def rng_for(self, *keys: int) -> np.random.Generator:
        """Deterministic generator of a sub-object of this patient (seed and phenotype;
        :func:`simulators.specimens.base.keyed_rng`)."""
        return keyed_rng(self.seed, self.patient_key, *keys)

    def noise_seed(self, field: int) -> int:
        """Seed of noise field ``field`` (``N_WALL``, ``N_TEX``...): histology fields are
        keyed by seed and phenotype, preparation fields (``N_SECTION``, ``N_HOLE``) by the
        patient's ``artefact_seed``."""
        if field in (N_SECTION, N_HOLE):
            return (self.config.artefact_seed + 1) * 64 + field
        return (self.seed * 8 + self.patient_key) * 64 + field

    def tissue_at(self, x: NDArray, y: NDArray) -> NDArray[np.bool_]:
        """True where world points (um) lie in the section outline and not in a hole."""
        c = self.config
        x = np.asarray(x, float)
        y = np.asarray(y, float)
        q = self._outline_q(x, y, noise_points(x, y, self.noise_seed(N_SECTION), 900.0, 2))
        ok = q < 1.0
        if c.hole_fraction > 0:
            ok &= noise_points(x, y, self.noise_seed(N_HOLE), c.hole_scale_um) < self.hole_level
        return ok

    def _outline_q(self, x: NDArray, y: NDArray, n: NDArray) -> NDArray:
        c = self.config
        cx, cy = c.center_um
        rx, ry = c.section_radii_um
        return np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2) + \
            c.boundary_roughness * (2.0 * n - 1.0)

    def lattice_centre(self, i: int, j: int) -> tuple[float, float]:
        """World (x, y) um of lattice cell (i, j) before jitter (odd rows shifted by half)."""
        cx, cy = self.config.center_um
        return cx + (i + 0.5 * (j & 1)) * self.pitch_um, cy + j * self.row_um

    def cells(self, x0: float, x1: float, y0: float, y1: float, reach: float
              ) -> list[tuple[int, int]]:
        """Lattice cells (i, j) whose objects, reaching ``reach`` um, may meet the box."""
        cx, cy = self.config.center_um
        j0 = max(-self._jmax, math.floor((y0 - reach - cy) / self.row_um) - 1)
        j1 = min(self._jmax, math.ceil((y1 + reach - cy) / self.row_um) + 1)
        i0 = max(-self._imax, math.floor((x0 - reach - cx) / self.pitch_um) - 1)
        i1 = min(self._imax, math.ceil((x1 + reach - cx) / self.pitch_um) + 1)
        return [(i, j) for j in range(j0, j1 + 1) for i in range(i0, i1 + 1)]

    def state_of(self, u: float) -> int:
        """Index in :data:`STATE_NAMES` of the state a uniform ``u`` in [0, 1) picks from
        the patient's cumulative weights."""
        return min(int(np.searchsorted(self._cum, u, side="right")), len(STATE_NAMES) - 1)

    def _make_raw(self, i: int, j: int) -> tuple | None:
        """Unresolved tubule of lattice cell (i, j): (cx, cy, b, ratio, angle, state) or
        None (``state`` an index in :data:`STATE_NAMES`)."""
        if abs(i) > self._imax or abs(j) > self._jmax:
            return None
        c = self.config
        rng = self.rng_for(S_TUBULE, i, j)
        gx, gy = self.lattice_centre(i, j)
        jx, jy = rng.uniform(-self.jitter_um, self.jitter_um, 2)
        cx, cy = gx + jx, gy + jy
        k = self.state_of(float(rng.uniform()))
        f = float(rng.uniform(*STATES[STATE_NAMES[k]].diameter_factor))
        d = float(np.clip(rng.normal(c.tubule_diameter_um, c.tubule_diameter_sd_um) * f,
                          c.diameter_range_um[0], self.d_max_um))
        ratio = 1.0 + min(abs(rng.normal(0.0, 0.18)), c.axis_ratio_max - 1.0)
        angle = float(rng.uniform(0.0, math.pi))
        if not bool(self.tissue_at(np.array([cx]), np.array([cy]))[0]):
            return None
        return (cx, cy, 0.5 * d, ratio, angle, k)

    @staticmethod
    def _support(b: float, ratio: float, angle: float, nx: float, ny: float) -> float:
        """Support function of the ellipse (ratio*b, b, angle) in unit direction (nx, ny)."""
        ca, sa = math.cos(angle), math.sin(angle)
        p, q = nx * ca + ny * sa, -nx * sa + ny * ca
        return math.sqrt((ratio * b * p) ** 2 + (b * q) ** 2)

    def _make_tubule(self, i: int, j: int) -> Tubule | None:
        """Tubule of cell (i, j), shrunk so that it keeps ``interstitial_gap_um`` from its
        neighbours (separating axis along the line of centres; pairwise symmetric)."""
        raw = self._raw(i, j)
        if raw is None:
            return None
        c = self.config
        cx, cy, b, ratio, angle, k = raw
        s = 1.0
        for dj in range(-2, 3):
            for di in range(-2, 3):
                if di == 0 and dj == 0:
                    continue
                nb = self._raw(i + di, j + dj)
                if nb is None:
                    continue
                dx, dy = nb[0] - cx, nb[1] - cy
                dist = math.hypot(dx, dy)
                nx, ny = dx / dist, dy / dist
                h = self._support(b, ratio, angle, nx, ny) + \
                    self._support(nb[2], nb[3], nb[4], -nx, -ny)
                s = min(s, (dist - c.interstitial_gap_um) / h)
        b = max(b * s, 0.5 * c.diameter_range_um[0])
        rng = self.rng_for(S_TUBULE + 16, i, j)
        name = STATE_NAMES[k]
        st = STATES[name]
        v = {key: float(rng.uniform(lo, hi)) for key, (lo, hi) in st.ranges().items()}
        # mean lamina propria: the state's x the patient's thickening, within the physical
        # limits and leaving at least 30 % of the radius
        wall = float(np.clip(v["wall_um"] * c.wall_factor, *c.wall_range_um))
        wall = min(wall, 0.7 * b)
        epi = v["epithelium_um"]
        var, irr, infold = v["wall_variation"], v["lumen_irregularity"], v["infolding_um"]
        # mean lumen radius; its irregular outline (+- lumen_irregularity) keeps >= 12 um of
        # epithelium above the thickest wall
        lum_hi = (b - wall * (1 + var) - infold - 12.0) / (1.0 + irr)
        lum = float(np.clip(b - wall - epi, st.lumen_min_um,
                            max(st.lumen_min_um, min(st.lumen_max_um, lum_hi))))
        elongated = bool(rng.uniform() < st.elongated_probability)
        # LDs: density from their composition (by state), area from the epithelial cycle
        lrng = self.rng_for(S_TUBULE + 32, i, j)
        comp = draw_composition(name, lrng)
        dens = min(MAX_DROPLET_DENSITY, c.droplet_density * droplet_density(comp))
        ld_area = v["droplet_area_fraction"] * cycle_factor(
            "elongated_spermatids" in st.germ, lrng)
        tid = 1 + (i + 1024) * 2048 + (j + 1024)
        return Tubule(tid, (i, j), cx, cy, ratio * b, b, angle, wall, lum, elongated,
                      state=name, wall_variation=var, gap_fraction=v["wall_gap_fraction"],
                      infolding_um=infold, wall_collagen=v["wall_collagen"],
                      wall_chi2=v["wall_chi2"], lumen_irregularity=irr,
                      droplet_area_fraction=ld_area,
                      droplet_diameter_um=v["droplet_diameter_um"], droplet_density=dens,
                      ld_composition=comp,
                      protein_droplet_area_fraction=v["protein_droplet_area_fraction"])

    def tubules_in(self, x0: float, x1: float, y0: float, y1: float) -> list[Tubule]:
        """Tubules whose outline's bounding box meets the world box (um), by id."""
        out = []
        for i, j in self.cells(x0, x1, y0, y1, self.reach_um):
            t = self.tubule(i, j)
            if t is None:
                continue
            if (t.cx_um + t.a_um > x0 and t.cx_um - t.a_um < x1 and t.cy_um + t.a_um > y0
                    and t.cy_um - t.a_um < y1):
                out.append(t)
        return sorted(out, key=lambda t: t.id)

    def wall_at(self, t: Tubule, x: NDArray, y: NDArray) -> NDArray:
        """Local lamina propria thickness (um) of tubule ``t`` at world points.

        ``wall (1 + 2 var (1/2 - nw)) + infold (2 tex - 1)``, truncated to ``gap_wall_um``
        where ``nw`` exceeds the gap level (NOA: the wall thins, then breaks), at least
        1 um; ``nw`` is the 30 um noise, ``tex`` the 3.5 um noise.
        :meth:`~simulators.specimens.testis.TestisSection.render` evaluates the same formula
        per pixel.
        """
        c = self.config
        nw = noise_points(x, y, self.noise_seed(N_WALL), 30.0)
        w = t.wall_um * (1.0 + 2.0 * t.wall_variation * (0.5 - nw))
        if t.infolding_um > 0:
            w = w + t.infolding_um * (2.0 * noise_points(x, y, self.noise_seed(N_TEX), 3.5) - 1)
        if t.gap_fraction > 0:
            g = np.clip((nw - t.gap_level) * 25.0, 0.0, 1.0)
            w = w + g * np.minimum(c.gap_wall_um - w, 0.0)
        return np.maximum(w, 1.0)

    def lumen_at(self, t: Tubule, x: NDArray, y: NDArray) -> NDArray:
        """Local lumen radius (um, unstretched frame) of tubule ``t`` at world points."""
        nw = noise_points(x, y, self.noise_seed(N_WALL), 30.0)
        return t.lumen_um * (1.0 + 2.0 * t.lumen_irregularity * (nw - 0.5))

    # ------------------------------------------------------------------ outline and tears
    def section_coverage(self, window: Window) -> NDArray[np.float32] | None:
        """Coverage of the section outline on the window, or None when it is all inside."""
        c = self.config
        cx, cy = c.center_um
        rx, ry = c.section_radii_um
        x0, x1, y0, y1 = window.extent_um
        corners = max(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2
                      for x in (x0, x1) for y in (y0, y1))
        ramp = 0.5 * window.pixel_um / min(rx, ry)  # coverage < 1 from 1 - ramp on
        if math.sqrt(corners) < 1.0 - c.boundary_roughness - ramp - 1e-6:
            return None
        n = noise_grid(window, self.noise_seed(N_SECTION), 900.0, 2)
        xs = ((window.xs() - cx) / rx).astype(_F32)
        ys = ((window.ys() - cy) / ry).astype(_F32)
        q = np.sqrt(xs[None, :] ** 2 + ys[:, None] ** 2)
        q += _F32(c.boundary_roughness) * (_F32(2.0) * n - _F32(1.0))
        scale = min(rx, ry) / window.pixel_um
        cov = (_F32(1.0) - q) * _F32(scale) + _F32(0.5)
        return np.clip(cov, 0.0, 1.0, out=cov)

    def hole_coverage(self, window: Window) -> NDArray[np.float32] | None:
        """Coverage of tears (holes) on the window, or None when there is none."""
        c = self.config
        if c.hole_fraction <= 0:
            return None
        seed = self.noise_seed(N_HOLE)
        # coverage ramps up from half a ramp width below the level
        ramp = 0.6 * window.pixel_um / c.hole_scale_um
        if noise_max(window, seed, c.hole_scale_um) <= self.hole_level - ramp:
            return None
        n = noise_grid(window, seed, c.hole_scale_um)
        cov = (n - _F32(self.hole_level)) * _F32(c.hole_scale_um / (1.2 * window.pixel_um))
        cov += _F32(0.5)
        return np.clip(cov, 0.0, 1.0, out=cov)
