"""Geometry of a testis section: its outline and tears, the packing of tubule profiles
and each tubule's profile (oblique cut of a cylinder), lamina propria and lumen.

Tubule profiles are a random sequential packing (Matérn type III) of candidates, one per
cell of a square hash grid, drawn by blocks of 8 x 8 cells from the block's own generator
(``rng_for(stream, bi, bj)``; a tubule's histology from its cell's, ``(i, j)``): a
candidate is kept unless a kept candidate of higher priority would need both to shrink
below ``packing_scale_min`` to keep the interstitial gap and both tubules' interstitial
sheaths between them; a kept tubule keeps its drawn size and is flattened against each
kept neighbour closer than that (pair scale < 1) by a flat face on the pair's separating
axis (:meth:`SectionGeometry.contact_face`, :meth:`Tubule.depth_at`). The decision
follows chains of increasing priority only, so it is evaluated locally, lazily and
identically whatever window asks. Each candidate draws its
spermatogenic state from the patient's mixture
(:data:`~simulators.specimens.testis.config.STATES`), which sets its size, wall,
epithelium and droplets, and its cut angle (:meth:`SectionGeometry._make_block`).
Generators and histology noise are keyed by the seed and the phenotype; the outline and
tears by the patient's ``artefact_seed``. Fields that are not objects (wall thickness
variation, lumen outline, section outline, tears) are value noise on world-aligned
lattices, so any window renders the same values for the same world point.

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
from simulators.specimens._raster import (
    noise_grid,
    noise_layers,
    noise_level,
    noise_max,
    noise_point,
)
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
    :attr:`Composition.instance`; ``cell`` the hash-cell indices it was generated from;
    ``elongated``: the profile is at a stage with elongated spermatids. ``state``: its
    spermatogenic state (:data:`~simulators.specimens.testis.config.STATES`), and the
    state's parameters as drawn for this tubule: ``wall_variation`` (relative local +-
    variation of the wall), ``gap_fraction`` (fraction of the circumference where the
    collagen is truncated), ``infolding_um``, ``wall_collagen`` / ``wall_chi2``,
    ``lumen_irregularity``, ``droplet_area_fraction``, ``droplet_diameter_um``,
    ``droplet_density`` (CH2 density of its LDs relative to triolein, from
    ``ld_composition``: fractions of :data:`~simulators.specimens.testis.lipids.CLASS_NAMES`),
    ``protein_droplet_area_fraction``.
    Packing: ``scale`` (<= 1) its least pair scale with its kept neighbours (below 1 it
    is flattened against them), ``sheath_um`` its interstitial sheath (um), ``contacts``
    one flat face per kept neighbour it is flattened against: (nx, ny, offset), the
    profile keeping ``nx dx + ny dy <= offset`` (um, dx dy from its centre).
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
    scale: float = 1.0
    sheath_um: float = 0.0
    contacts: tuple[tuple[float, float, float], ...] = ()

    @property
    def gap_level(self) -> float:
        """Wall-noise level above which the collagen is truncated (2: never)."""
        return noise_level(self.gap_fraction) if self.gap_fraction > 0 else 2.0

    @property
    def diameter_um(self) -> float:
        """True (unstretched) outer diameter, 2 b."""
        return 2.0 * self.b_um

    @property
    def half_extent_um(self) -> tuple[float, float]:
        """Half width and half height (um) of the outline's axis-aligned bounding box."""
        ca, sa = math.cos(self.angle_rad), math.sin(self.angle_rad)
        return (math.hypot(self.a_um * ca, self.b_um * sa),
                math.hypot(self.a_um * sa, self.b_um * ca))

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
        """Unstretched-frame radius r' (um) of world points; depth below the elliptic
        outline is b - r' (:meth:`depth_at` is the depth below the flattened one)."""
        dx, dy = np.asarray(x) - self.cx_um, np.asarray(y) - self.cy_um
        ca, sa = math.cos(self.angle_rad), math.sin(self.angle_rad)
        u = (dx * ca + dy * sa) / self.axis_ratio
        v = -dx * sa + dy * ca
        return np.hypot(u, v)

    def depth_at(self, x: NDArray, y: NDArray) -> NDArray:
        """Depth (um, > 0 inside) of world points below the tubule's outline: the elliptic
        outline (``b - r'``, unstretched frame) cut by the flat face of each of its
        :attr:`contacts` (world distance to the face), so crowded tubules are flattened
        against each other and keep the band between them (docs/physics-notes.md,
        tubule packing)."""
        d = self.b_um - self.radius_at(x, y)
        if self.contacts:
            dx, dy = np.asarray(x) - self.cx_um, np.asarray(y) - self.cy_um
            for nx, ny, off in self.contacts:
                d = np.minimum(d, off - (nx * dx + ny * dy))
        return d


class SectionGeometry:
    """Outline, tears and tubule packing of one patient's section (world um).

    Tubule profiles are a random sequential (Matérn type III) packing of candidates, one per
    cell of a square hash grid of side ``cell_um``: a candidate is kept unless a candidate
    of higher priority that is kept conflicts with it (docs/physics-notes.md, testis
    phantom, tubule packing). ``pitch_um``: the patient's spacing scale (``pitch_factor``
    x mean tubule diameter; it sets the interstitial sheaths and ``cell_um``);
    ``reach_um``: how far from its hash cell a tubule outline can reach (the interstitium's
    objects have their own grid: :mod:`~simulators.specimens.testis.interstitium`);
    ``extent_um``: bounding box of all tissue. Everything is cached (deterministic, so
    eviction never changes results).
    """

    #: directions (unit vectors, a centrally symmetric set) tried as separating axes
    _DIRS = np.array([(math.cos(a), math.sin(a)) for a in np.arange(16) * (math.pi / 16)])
    _DIRS = np.concatenate([_DIRS, -_DIRS])  # exactly symmetric: pair scales are too

    #: hash cells per side of a block (candidates are drawn and tissue-tested by blocks)
    _BLOCK = 8
    #: hash-cell side / pitch: one candidate per cell, about 6 per kept tubule, so the
    #: packing is close to jammed (docs/physics-notes.md, tubule packing)
    _CELL = 0.4
    #: mean sheath / ((pitch_factor - 1) x mean diameter): two neighbours' sheaths add up
    #: on average to the surface gap of the former lattice of the same pitch_factor
    _SHEATH = 0.5


    def __init__(self, seed: int, config: TestisConfig) -> None:
        self.seed = int(seed)
        self.config = c = config
        #: small derived facts of the section memoised by other modules, keyed by
        #: (name, ...) (deterministic, so a value never changes; a few per grid square)
        self.memo: dict[tuple, object] = {}
        #: key of the patient (seed and phenotype) in every histology rng and noise field
        self.patient_key = PHENOTYPES.index(c.phenotype)
        self._cum = np.cumsum(c.state_weights)
        self.mean_diameter_um = c.tubule_diameter_um * c.mean_diameter_factor
        self.pitch_um = c.pitch_factor * self.mean_diameter_um
        #: side of the hash cells, each holding one candidate
        self.cell_um = self._CELL * self.pitch_um
        #: mean interstitial sheath of a tubule (exponential, at most 4 x the mean)
        self.sheath_mean_um = self._SHEATH * (c.pitch_factor - 1.0) * self.mean_diameter_um
        self.sheath_max_um = 4.0 * self.sheath_mean_um
        #: largest true diameter a tubule of this patient can have (um): the physical
        #: limit, or the largest state factor x the scale + 4 sd
        self.d_max_um = min(c.diameter_range_um[1],
                            max(s.diameter_factor[1] for s in STATES.values())
                            * (c.tubule_diameter_um + 4.0 * c.tubule_diameter_sd_um))
        self.a_max_um = 0.5 * self.d_max_um * c.axis_ratio_max
        #: beyond this centre distance two candidates never interact (pair shrink >= 1)
        self.pair_range_um = 2.0 * (self.a_max_um + self.sheath_max_um) + \
            c.interstitial_gap_um
        self._nb = int(math.ceil(self.pair_range_um / self.cell_um)) + 1
        #: how far from its hash cell a tubule outline can reach
        self.tubule_reach_um = self.a_max_um + self.cell_um
        self.reach_um = self.tubule_reach_um
        self.hole_level = noise_level(c.hole_fraction) if c.hole_fraction > 0 else 2.0
        cx, cy = c.center_um
        rx, ry = c.section_radii_um
        g = 1.0 + c.boundary_roughness
        self.extent_um = (cx - rx * g, cx + rx * g, cy - ry * g, cy + ry * g)
        self._imax = int(math.ceil(rx * g / self.cell_um)) + 2
        self._jmax = int(math.ceil(ry * g / self.cell_um)) + 2
        self._block = functools.lru_cache(maxsize=2048)(self._make_block)
        self._hood = functools.lru_cache(maxsize=64)(self._make_hood)
        self._raw = functools.lru_cache(maxsize=65536)(self._make_raw)
        self._near = functools.lru_cache(maxsize=16384)(self._make_near)
        self._kept = functools.lru_cache(maxsize=65536)(self._make_kept)
        #: the tubule of hash cell (i, j), or None (cached)
        self.tubule = functools.lru_cache(maxsize=16384)(self._make_tubule)

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
        layers = [(self.noise_seed(N_SECTION), 900.0, 2)]
        if c.hole_fraction > 0:
            layers.append((self.noise_seed(N_HOLE), c.hole_scale_um, 1))
        n = noise_layers(x, y, layers)  # noise_points of each, in one go
        ok = self._outline_q(x, y, n[0]) < 1.0
        if c.hole_fraction > 0:
            ok &= n[1] < self.hole_level
        return ok

    def tissue_point(self, x: float, y: float) -> bool:
        """:meth:`tissue_at` of one world point (um), in Python floats: the same answer
        (the same IEEE operations), for rejection tests of a few candidates."""
        c = self.config
        x, y = float(x), float(y)
        n = noise_point(x, y, self.noise_seed(N_SECTION), 900.0, 2)
        cx, cy = c.center_um
        rx, ry = c.section_radii_um
        u, v = (x - cx) / rx, (y - cy) / ry
        if not math.sqrt(u * u + v * v) + c.boundary_roughness * (2.0 * n - 1.0) < 1.0:
            return False
        return c.hole_fraction <= 0 or noise_point(
            x, y, self.noise_seed(N_HOLE), c.hole_scale_um) < self.hole_level

    def _outline_q(self, x: NDArray, y: NDArray, n: NDArray) -> NDArray:
        c = self.config
        cx, cy = c.center_um
        rx, ry = c.section_radii_um
        return np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2) + \
            c.boundary_roughness * (2.0 * n - 1.0)

    def lattice_centre(self, i: int, j: int) -> tuple[float, float]:
        """World (x, y) um of the centre of hash cell (i, j) (its candidate lies within
        half a ``cell_um`` of it in x and y)."""
        cx, cy = self.config.center_um
        return cx + (i + 0.5) * self.cell_um, cy + (j + 0.5) * self.cell_um

    def cells(self, x0: float, x1: float, y0: float, y1: float, reach: float
              ) -> list[tuple[int, int]]:
        """Hash cells (i, j) whose objects, reaching ``reach`` um from the cell's
        candidate, may meet the box."""
        cx, cy = self.config.center_um
        h = self.cell_um
        j0 = max(-self._jmax, math.floor((y0 - reach - cy) / h) - 1)
        j1 = min(self._jmax, math.floor((y1 + reach - cy) / h) + 1)
        i0 = max(-self._imax, math.floor((x0 - reach - cx) / h) - 1)
        i1 = min(self._imax, math.floor((x1 + reach - cx) / h) + 1)
        return [(i, j) for j in range(j0, j1 + 1) for i in range(i0, i1 + 1)]

    def state_of(self, u: float) -> int:
        """Index in :data:`STATE_NAMES` of the state a uniform ``u`` in [0, 1) picks from
        the patient's cumulative weights."""
        return min(int(np.searchsorted(self._cum, u, side="right")), len(STATE_NAMES) - 1)

    def _make_block(self, bi: int, bj: int) -> NDArray:
        """Candidates of the ``_BLOCK`` x ``_BLOCK`` hash cells of block (bi, bj): rows
        (cx, cy, b, ratio, angle, state, priority, sheath, i, j, valid), one per cell, at a
        uniform point of its cell, drawn (vectorised) from the block's own generator.

        Cut law: the tubule axis makes angle theta with the section normal; profiles of an
        isotropic tube system are hit in proportion to cos(theta), so cos(theta) has
        density 2 c on [0, 1] and the profile's axis ratio is 1 / cos(theta), at most
        ``axis_ratio_max`` (the straight run of a coiled tubule): P(ratio > R) = 1 / R^2.
        ``state`` is an index in :data:`STATE_NAMES`; ``valid`` 0 outside the tissue.
        """
        c = self.config
        n = self._BLOCK
        m = n * n
        out = np.zeros((m, 11))
        k = np.arange(m)
        out[:, 8], out[:, 9] = bi * n + k % n, bj * n + k // n
        rng = self.rng_for(S_TUBULE, bi, bj)
        h = 0.5 * self.cell_um
        cx, cy = c.center_um
        out[:, 0] = cx + (out[:, 8] + 0.5) * self.cell_um + rng.uniform(-h, h, m)
        out[:, 1] = cy + (out[:, 9] + 0.5) * self.cell_um + rng.uniform(-h, h, m)
        st = np.minimum(np.searchsorted(self._cum, rng.uniform(size=m), side="right"),
                        len(STATE_NAMES) - 1)
        lo, hi = (np.array([STATES[s].diameter_factor[q] for s in STATE_NAMES])[st]
                  for q in (0, 1))
        f = lo + (hi - lo) * rng.uniform(size=m)
        d = np.clip(rng.normal(c.tubule_diameter_um, c.tubule_diameter_sd_um, m) * f,
                    c.diameter_range_um[0], self.d_max_um)
        cos_t = np.sqrt(1.0 - rng.uniform(size=m))  # density 2 c on (0, 1]
        ratio = np.minimum(1.0 / cos_t, c.axis_ratio_max)
        out[:, 2], out[:, 3], out[:, 5] = 0.5 * d, ratio, st
        out[:, 4] = rng.uniform(0.0, math.pi, m)
        # priority: the first of `ratio` unit-area arrivals, so that elongated profiles,
        # which conflict with more neighbours, keep their share of the cut law
        out[:, 6] = rng.uniform(size=m) ** (1.0 / ratio)
        out[:, 7] = np.minimum(rng.exponential(self.sheath_mean_um, m), self.sheath_max_um)
        ok = (np.abs(out[:, 8]) <= self._imax) & (np.abs(out[:, 9]) <= self._jmax)
        if ok.any():
            out[ok, 10] = self.tissue_at(out[ok, 0], out[ok, 1])
        return out

    def _make_raw(self, i: int, j: int) -> tuple | None:
        """Candidate of hash cell (i, j): (cx, cy, b, ratio, angle, state, priority,
        sheath) or None (outside the tissue; see :meth:`_make_block`)."""
        n = self._BLOCK
        row = self._block(i // n, j // n)[(i % n) + n * (j % n)]
        if row[10] == 0:
            return None
        return (float(row[0]), float(row[1]), float(row[2]), float(row[3]), float(row[4]),
                int(row[5]), float(row[6]), float(row[7]))

    def _support(self, b: NDArray, ratio: NDArray, angle: NDArray, nx: NDArray,
                 ny: NDArray) -> NDArray:
        """Support function of ellipses (ratio*b, b, angle) in unit directions (nx, ny)."""
        ca, sa = np.cos(angle), np.sin(angle)
        p, q = nx * ca + ny * sa, -nx * sa + ny * ca
        return np.sqrt((ratio * b * p) ** 2 + (b * q) ** 2)

    def _axes(self, p: tuple, q: tuple) -> tuple[NDArray, NDArray, NDArray, NDArray,
                                                  NDArray]:
        """Candidate separating axes of two candidates (raw tuples; ``q`` may hold arrays),
        on a last axis of 34: (nx, ny, n.d - gap - w_p - w_q, h_p(n), h_q(-n)) for
        n in :attr:`_DIRS` and the line of centres, both signs."""
        dx = np.asarray(q[0], float) - p[0]
        dy = np.asarray(q[1], float) - p[1]
        dist = np.maximum(np.hypot(dx, dy), 1e-9)
        ux, uy = dx / dist, dy / dist
        nx = np.concatenate([np.broadcast_to(self._DIRS[:, 0], dx.shape + (32,)),
                             ux[..., None], -ux[..., None]], axis=-1)
        ny = np.concatenate([np.broadcast_to(self._DIRS[:, 1], dx.shape + (32,)),
                             uy[..., None], -uy[..., None]], axis=-1)
        num = nx * dx[..., None] + ny * dy[..., None] - (
            self.config.interstitial_gap_um + (p[7] + np.asarray(q[7], float)))[..., None]
        hp = self._support(p[2], p[3], p[4], nx, ny)
        hq = self._support(np.asarray(q[2], float)[..., None], np.asarray(q[3], float)[..., None],
                           np.asarray(q[4], float)[..., None], -nx, -ny)
        return nx, ny, num, hp, hq

    def pair_scale(self, p: tuple, q: tuple) -> NDArray:
        """Largest common scale s of two candidates' outlines (raw tuples; ``q`` may hold
        arrays) that leaves ``interstitial_gap_um`` + both sheaths between them across a
        separating axis: max over axes n (:meth:`_axes`) of
        ``(n.d - gap - w_p - w_q) / (h_p(n) + h_q(-n))``. Symmetric in p, q."""
        _, _, num, hp, hq = self._axes(p, q)
        return np.max(num / (hp + hq), axis=-1)

    def contact_face(self, key: tuple[int, int], other: tuple[int, int]
                     ) -> tuple[float, float, float]:
        """Flat face (nx, ny, offset) of candidate ``key`` against candidate ``other``:
        the separating axis n of their pair scale s (:meth:`pair_scale`), pointing away
        from ``key``'s centre, and ``s h(n)`` (um). Both faces come from the same axis
        (taken in a fixed order of the two), so the band between them is exactly
        ``interstitial_gap_um`` + both sheaths."""
        first, second = sorted((key, other))
        p, q = self._raw(*first), self._raw(*second)
        assert p is not None and q is not None
        nx, ny, num, hp, hq = self._axes(p, q)
        k = int(np.argmax(num / (hp + hq)))
        s = float(num[k] / (hp[k] + hq[k]))
        if key == first:
            return float(nx[k]), float(ny[k]), s * float(hp[k])
        return -float(nx[k]), -float(ny[k]), s * float(hq[k])

    def _threshold(self, b_p: float, b_q: NDArray) -> NDArray:
        """Least pair scale two kept candidates may have (their conflict threshold)."""
        lo = 0.5 * self.config.diameter_range_um[0]
        return np.maximum(self.config.packing_scale_min, np.maximum(lo / b_p, lo / b_q))

    def _make_hood(self, bi: int, bj: int) -> NDArray:
        """Valid candidates of the blocks within ``_nb`` cells of block (bi, bj), by
        column (11, n): a superset of every candidate that can interact with one of the
        block's."""
        m, n = self._nb, self._BLOCK
        arr = np.concatenate([self._block(ki, kj)
                              for kj in range((bj * n - m) // n, (bj * n + n - 1 + m) // n + 1)
                              for ki in range((bi * n - m) // n, (bi * n + n - 1 + m) // n + 1)])
        return np.ascontiguousarray(arr[arr[:, 10] > 0].T)

    def _make_near(self, i: int, j: int) -> tuple[list[list[int]], NDArray, NDArray,
                                                   NDArray]:
        """Neighbours of candidate (i, j) whose pair scale is < 1: their cells, pair
        scales, conflict thresholds and priorities, by decreasing priority."""
        p = self._raw(i, j)
        empty: tuple[list[list[int]], NDArray, NDArray, NDArray] = (
            [], np.empty(0), np.empty(0), np.empty(0))
        if p is None:
            return empty
        n = self._BLOCK
        h = self._hood(i // n, j // n)
        dist = np.hypot(h[0] - p[0], h[1] - p[1])
        reach = p[2] * p[3] + h[2] * h[3] + self.config.interstitial_gap_um + p[7] + h[7]
        close = np.flatnonzero((dist < reach) & ((h[8] != i) | (h[9] != j)))
        if close.size == 0:
            return empty
        a = h[:, close].T
        s = self.pair_scale(p, tuple(a[:, k] for k in range(8)))
        sel = s < 1.0
        close, a, s = close[sel], a[sel], s[sel]
        order = np.lexsort((a[:, 9], a[:, 8], -a[:, 6]))
        return (a[order, 8:10].astype(int).tolist(), s[order],
                self._threshold(p[2], a[order, 2]), a[order, 6])

    def _make_kept(self, i: int, j: int) -> bool:
        """Whether candidate (i, j) is kept: no kept candidate of higher priority conflicts
        with it (pair scale below the threshold). Random sequential packing in priority
        order, evaluated locally (the recursion follows increasing priorities only)."""
        p = self._raw(i, j)
        if p is None:
            return False
        keys, s, thr, prio = self._near(i, j)
        for k in range(len(keys)):
            if (prio[k], keys[k][0], keys[k][1]) <= (p[6], i, j):
                continue  # lower priority: it does not decide this one
            if s[k] < thr[k] and self._kept(*keys[k]):
                return False
        return True

    def _make_tubule(self, i: int, j: int) -> Tubule | None:
        """Tubule of hash cell (i, j) if its candidate is kept, at its drawn size and
        flattened against each kept neighbour its outline would come closer to than
        ``interstitial_gap_um`` + both sheaths (pair scale < 1; :meth:`Tubule.depth_at`):
        crowded tubules deform rather than shrink."""
        if not self._kept(i, j):
            return None
        raw = self._raw(i, j)
        assert raw is not None
        c = self.config
        cx, cy, b, ratio, angle, k, _, sheath = raw
        keys, s_pair, _, _ = self._near(i, j)
        scale = 1.0
        contacts = []
        for key, s in zip(keys, s_pair):
            if self._kept(*key):
                scale = min(scale, float(s))
                contacts.append(self.contact_face((i, j), (key[0], key[1])))
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
                      protein_droplet_area_fraction=v["protein_droplet_area_fraction"],
                      scale=scale, sheath_um=sheath, contacts=tuple(contacts))

    def tubules_in(self, x0: float, x1: float, y0: float, y1: float) -> list[Tubule]:
        """Tubules whose outline's bounding box meets the world box (um), by id."""
        out = []
        for i, j in self.cells(x0, x1, y0, y1, self.tubule_reach_um):
            t = self.tubule(i, j)
            if t is None:
                continue
            ex, ey = t.half_extent_um
            if t.cx_um + ex > x0 and t.cx_um - ex < x1 and t.cy_um + ey > y0 and \
                    t.cy_um - ey < y1:
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
        return self.wall_and_lumen_at(t, x, y)[0]

    def wall_and_lumen_at(self, t: Tubule, x: NDArray, y: NDArray
                          ) -> tuple[NDArray, NDArray]:
        """(:meth:`wall_at`, local lumen radius) of tubule ``t`` at world points (um, the
        lumen radius in the unstretched frame), their noise fields evaluated together."""
        c = self.config
        layers = [(self.noise_seed(N_WALL), 30.0, 1)]
        if t.infolding_um > 0:
            layers.append((self.noise_seed(N_TEX), 3.5, 1))
        nw, *tex = noise_layers(x, y, layers)
        w = t.wall_um * (1.0 + 2.0 * t.wall_variation * (0.5 - nw))
        if t.infolding_um > 0:
            w = w + t.infolding_um * (2.0 * tex[0] - 1)
        if t.gap_fraction > 0:
            g = np.clip((nw - t.gap_level) * 25.0, 0.0, 1.0)
            w = w + g * np.minimum(c.gap_wall_um - w, 0.0)
        return (np.maximum(w, 1.0),
                t.lumen_um * (1.0 + 2.0 * t.lumen_irregularity * (nw - 0.5)))

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
