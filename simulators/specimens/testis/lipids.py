"""What a lipid droplet (LD) of a tubule is made of, and how bright that makes it at 2850 cm^-1.

The SRS signal of the CH2 symmetric stretch at ~2850 cm^-1 goes as the number density of
acyl-chain CH2 groups. Relative to the simulator's lipid reference (triolein, = 1), a
droplet's ``density`` weight is therefore the composition-weighted CH2 number density of
its lipid classes, ``sum_k f_k n_k / n_triolein`` with ``n_k = (CH2 per molecule) x (mass
density) / (molar mass)``: computed from chemistry (:data:`LIPID_CLASSES`), not fitted.

Where the lipid comes from ties the composition to each tubule's spermatogenic state
(docs/physics-notes.md, lipid droplets by mechanism): Sertoli cells phagocytose the residual
bodies that spermatids shed at spermiation and the germ cells that die; germ-cell membranes
are rich in very-long-chain polyunsaturated fatty acids (22:6 n-3, 22:5 n-6), whose chains
carry few CH2, so the droplets of tubules with complete spermatogenesis are PUFA-rich and
read dimmer per volume. Without spermatids that input stops; the Sertoli cell's own stores
(more saturated triglyceride, cholesteryl esters) dominate. The residual-body input also
follows the cycle of the seminiferous epithelium (:func:`cycle_factor`).

Only numpy; every number and its source: docs/physics-notes.md.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class LipidClass:
    """A neutral-lipid class of LDs: ``ch2`` acyl-chain CH2 groups per molecule,
    ``molar_mass`` g/mol, ``density_g_ml`` mass density (g/mL, near body temperature)."""

    ch2: int
    molar_mass: float
    density_g_ml: float

    @property
    def ch2_mmol_per_ml(self) -> float:
        """CH2 number density (mmol/mL)."""
        return 1000.0 * self.ch2 * self.density_g_ml / self.molar_mass


#: LD lipid classes (order of the composition tuples). Acyl CH2 counted per chain: 18:1
#: and 16:0 have 14, 22:6 has 8 (5 bis-allylic + C2, C3, C20); the cholesteryl ester adds
#: the 11 CH2 of cholesterol's ring system and side chain to its oleoyl chain's 14.
LIPID_CLASSES: dict[str, LipidClass] = {
    # triolein TG(18:1/18:1/18:1), C57H104O6: the reference (= 1)
    "tg_mono": LipidClass(42, 885.4, 0.91),
    # tripalmitin-like saturated TG, C51H98O6, ordered (between liquid 0.875 and solid)
    "tg_sat": LipidClass(42, 807.3, 0.93),
    # germ-cell PUFA TG, tri-22:6 (docosahexaenoyl), C69H98O6
    "tg_pufa": LipidClass(24, 1023.5, 0.93),
    # cholesteryl oleate, C45H78O2
    "ce": LipidClass(25, 651.1, 0.97),
}
CLASS_NAMES: tuple[str, ...] = tuple(LIPID_CLASSES)


def relative_ch2_density(name: str) -> float:
    """CH2 number density of lipid class ``name`` relative to triolein (dimensionless)."""
    return LIPID_CLASSES[name].ch2_mmol_per_ml / LIPID_CLASSES["tg_mono"].ch2_mmol_per_ml


#: Mean LD composition (fractions of :data:`CLASS_NAMES`) of each tubule state: where
#: residual bodies and dying germ cells feed the Sertoli cell, germ-cell PUFA; without
#: them, the Sertoli cell's own saturated TG and cholesteryl esters (judgements informed by
#: the lipidomics of germ-cell loss; docs/physics-notes.md).
COMPOSITION_MEANS: dict[str, tuple[float, float, float, float]] = {
    #             tg_mono tg_sat tg_pufa ce
    "complete":   (0.45, 0.15, 0.30, 0.10),
    "hypo":       (0.45, 0.20, 0.20, 0.15),
    "arrest_spt": (0.50, 0.25, 0.10, 0.15),
    "arrest_spg": (0.50, 0.30, 0.03, 0.17),
    "sco":        (0.45, 0.25, 0.02, 0.28),
    "sclerotic":  (0.45, 0.25, 0.02, 0.28),
}
#: Dirichlet concentration of a tubule's composition around its state's mean
COMPOSITION_CONCENTRATION: float = 40.0

#: Residual-body LD input over the cycle of the seminiferous epithelium: relative amplitude
#: of one stage (rodent LD content varies about 4-fold, max after spermiation: A = 0.6), and
#: the fraction of the cycle one human tubule profile spans (2-4 of its 6 stages).
CYCLE_AMPLITUDE: float = 0.6
CYCLE_SPAN: tuple[float, float] = (1.0 / 3.0, 2.0 / 3.0)


def droplet_density(composition: tuple[float, ...] | np.ndarray) -> float:
    """LD density weight (CH2 number density relative to triolein) of a composition."""
    f = np.asarray(composition, float)
    return float(sum(fk * relative_ch2_density(k) for fk, k in zip(f, CLASS_NAMES)))


def draw_composition(state: str, rng: np.random.Generator) -> tuple[float, ...]:
    """One tubule's LD composition: Dirichlet around :data:`COMPOSITION_MEANS` ``state``."""
    mean = np.asarray(COMPOSITION_MEANS[state], float)
    f = rng.dirichlet(COMPOSITION_CONCENTRATION * mean)
    return tuple(float(v) for v in f)


def cycle_factor(has_spermatids: bool, rng: np.random.Generator) -> float:
    """Factor on a tubule profile's LD area from its place in the epithelial cycle.

    With spermatids, the residual-body input of the stages the profile shows: one stage
    would give ``1 + A cos(2 pi phase)``; a profile spanning a fraction ``w`` of the cycle
    averages that to ``1 + A sinc(w) cos(2 pi phase)`` (``sinc(w) = sin(pi w) / (pi w)``).
    Without spermatids there is no spermiation and the factor is 1. Two draws either way,
    so that the rng stream does not depend on the state.
    """
    phase = float(rng.uniform())
    w = float(rng.uniform(*CYCLE_SPAN))
    if not has_spermatids:
        return 1.0
    return 1.0 + CYCLE_AMPLITUDE * math.sin(math.pi * w) / (math.pi * w) * math.cos(
        2.0 * math.pi * phase)
