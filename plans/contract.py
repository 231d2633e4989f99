"""The vocabulary shared by the instrument and the analysis: pure data, the one spelling.

Everything that more than one package must agree on is named here and nowhere else: Raman
shifts of the SRASH field and the rule that pairs its frames, channel names and data keys,
phenotypes and the diagnosis of each, the names of analysis runs and the keys that link them to
their scans, and the label values of truth maps.

Imports nothing (not even numpy), so every package may import it. ``simulators`` is the one
exception that may not (it imports nothing of ours): it keeps its own copies of the phenotype
names and label values, and ``tests/plans/test_contract.py`` proves that they agree.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final, Mapping

__all__ = [
    "ANALYSIS_KEY", "COMPOSITE_CHANNELS", "DECISIONS_STREAM", "DEFAULT_SHIFTS_CM1",
    "DETECTOR_CHANNELS", "DIAGNOSE_PLAN", "STOP_REASONS", "SURVEY_PLAN",
    "DIAGNOSES", "DIAGNOSIS_OF", "DISPLAY_RGB", "LD_QUANT_ANALYSIS", "LINK_SCAN", "LINK_SCANS",
    "LINK_SURVEY", "LINK_TRUTH", "LIPID_CM1", "NOA_SUBTYPES", "PAIR_TOLERANCE_CM1", "PHENOTYPES",
    "PROTEIN_CM1", "SEGMENTATION_ANALYSIS", "SHG_CHANNEL", "SRS_CHANNEL", "TRUTH_LABELS",
    "TRUTH_PLAN", "LBNET_ANALYSIS", "CHANNEL_COLORMAPS", "DX_TASKS", "SEGMENTERS",
    "diagnosis_of", "srs_channel", "srs_channel_shift",
]

# ---------------------------------------------------------------------------- Raman shifts
#: CH2 stretch (lipid) and CH3 stretch (protein) bands of the SRASH field, cm^-1
LIPID_CM1: Final[float] = 2850.0
PROTEIN_CM1: Final[float] = 2930.0
#: the shifts a SRASH field is acquired at, in acquisition order (cm^-1)
DEFAULT_SHIFTS_CM1: Final[tuple[float, float]] = (LIPID_CM1, PROTEIN_CM1)
#: pairing rule: a field's lipid / protein frame is the frame nearest each band within this
#: distance (cm^-1); a field without both is incomplete
PAIR_TOLERANCE_CM1: Final[float] = 25.0

# ---------------------------------------------------------------------------- channels
#: channels of one detector frame (image axis 0): lock-in (SRS) and PMT (SHG) outputs
DETECTOR_CHANNELS: Final[tuple[str, str]] = ("SRS", "SHG")
#: name of the SRS channel acquired at a Raman shift (cm^-1): ``SRS_CHANNEL.format(2850.0)``
#: is ``"SRS_2850"``; spell names with :func:`srs_channel` (it rounds the shift first); the
#: SHG channel is ``SHG_CHANNEL``
SRS_CHANNEL: Final[str] = "SRS_{:g}"
SHG_CHANNEL: Final[str] = "SHG"


def srs_channel(shift_cm1: float) -> str:
    """The one spelling of the SRS channel acquired at ``shift_cm1`` (cm^-1): the shift
    rounded to 0.1 cm^-1 without trailing zeros, ``SRS_2850``, ``SRS_2865.1``.

    Every file names its SRS channels with it: a detector frame after the frame's physical
    shift, a simulated field or stack after the shifts it was tuned to (with explicit pump
    wavelengths, the physical ones: 795.9 nm with a 1031 nm Stokes is ``SRS_2865.1``).
    """
    value = round(float(shift_cm1), 1) + 0.0  # + 0.0: no "-0"
    return SRS_CHANNEL.format(value)


def srs_channel_shift(name: str) -> float | None:
    """The Raman shift (cm^-1) an :func:`srs_channel` name says, None for other names."""
    prefix = SRS_CHANNEL.split("{")[0]
    if not name.startswith(prefix):
        return None
    try:
        return float(name[len(prefix):])
    except ValueError:
        return None

#: channels of the 3-channel SRASH composite of a field, in array order; also the OME channel
#: names of exported tiles and mosaics
COMPOSITE_CHANNELS: Final[tuple[str, str, str]] = (
    srs_channel(LIPID_CM1), srs_channel(PROTEIN_CM1), SHG_CHANNEL)
#: the paper's colour composite: R = protein, G = lipid, B = SHG
DISPLAY_RGB: Final[tuple[str, str, str]] = ("SRS_2930", "SRS_2850", "SHG")
#: display colormap of each composite channel (viewers: napari), as :data:`DISPLAY_RGB`
CHANNEL_COLORMAPS: Final[Mapping[str, str]] = MappingProxyType(
    dict(zip(DISPLAY_RGB, ("red", "green", "blue"))))

# ---------------------------------------------------------------------------- phenotypes
#: testis phenotypes: normal spermatogenesis and the non-obstructive azoospermia (NOA)
#: subtypes: maturation arrest at the spermatocyte (SPT) or spermatogonium (SPG) stage, and
#: Sertoli-cell-only (SCO)
PHENOTYPES: Final[tuple[str, ...]] = ("normal", "NOA-SPT", "NOA-SPG", "NOA-SCO")
NOA_SUBTYPES: Final[tuple[str, ...]] = ("NOA-SPT", "NOA-SPG", "NOA-SCO")
#: sample-level diagnoses
DIAGNOSES: Final[tuple[str, str]] = ("normal", "NOA")
DIAGNOSIS_OF: Final[Mapping[str, str]] = MappingProxyType(
    {"normal": "normal", **{p: "NOA" for p in NOA_SUBTYPES}})


def diagnosis_of(phenotype: str | None) -> str | None:
    """The diagnosis of a phenotype (``"normal"`` or ``"NOA"``), None when unknown."""
    return DIAGNOSIS_OF.get(phenotype) if phenotype is not None else None


# ---------------------------------------------------------------------------- models
#: LBNet-Dx classification tasks: name -> the phenotypes of each class, in class order
#: (``ml.dx.predict.TASKS`` builds its tasks from this)
DX_TASKS: Final[Mapping[str, tuple[tuple[str, ...], ...]]] = MappingProxyType({
    "normal-vs-noa": (("normal",), NOA_SUBTYPES),
    "spt-vs-spg": (("NOA-SPT",), ("NOA-SPG",)),
})
#: hyperspectral segmenters (``ml.seg.models``): name -> description
SEGMENTERS: Final[Mapping[str, str]] = MappingProxyType({
    "hybrid-unet": "Hybrid-UNet (MSR3D + spectral compression + attention skips)",
    "hybrid-no-msr": "ablation: Hybrid-UNet without the MSR3D modules",
    "hybrid-no-compression": "ablation: Hybrid-UNet without the spectral-compression module",
    "hybrid-no-attention": "ablation: Hybrid-UNet without attention-weighted skip pooling",
    "unet3d": "baseline: 3D UNet",
    "unet2d": "baseline: nnU-Net-style 2D UNet",
})


# ---------------------------------------------------------------------------- runs
#: start-document key naming the analysis an analysis run holds
ANALYSIS_KEY: Final[str] = "analysis"
LBNET_ANALYSIS: Final[str] = "lbnet-dx"
SEGMENTATION_ANALYSIS: Final[str] = "segmentation"
LD_QUANT_ANALYSIS: Final[str] = "ld-quantification"
#: plan name of the runs holding a simulated scan's truth label map
TRUTH_PLAN: Final[str] = "simulator-truth"
#: start-document keys linking a derived run to its source run(s)
LINK_SCAN: Final[str] = "scan_uid"
LINK_SCANS: Final[str] = "scan_uids"
LINK_TRUTH: Final[str] = "truth_for"
#: start-document key of a scan (a mosaic with ``survey=True``, a closed-loop diagnosis)
#: naming the uid of the survey run its tiles were chosen from
LINK_SURVEY: Final[str] = "survey_uid"

# ---------------------------------------------------------------------------- closed loop
#: plan name of the closed-loop diagnosis run (``plans.diagnose``)
DIAGNOSE_PLAN: Final[str] = "diagnose"
#: plan name of a survey run (``plans.survey_tiles``)
SURVEY_PLAN: Final[str] = "mosaic_survey"
#: event stream of a diagnosis run holding one decision per classified field
DECISIONS_STREAM: Final[str] = "decisions"
#: why a closed-loop diagnosis stopped: the vote passed its threshold with enough evidence
#: ("confident"); the tile budget was spent ("budget"); even the best field seen so far,
#: repeated over the rest of the budget, could not lift the vote over the threshold
#: ("futile"); no tissue tile was left to image ("exhausted"). All but "confident" report
#: the sample "unidentifiable".
STOP_REASONS: Final[tuple[str, ...]] = ("confident", "budget", "futile", "exhausted")

# ---------------------------------------------------------------------------- truth labels
#: per-pixel classes of truth maps (uint8 values); segmentation label maps use the same values
TRUTH_LABELS: Final[Mapping[str, int]] = MappingProxyType({
    "background": 0,  # no tissue (glass, mounting medium, water)
    "lumen": 1,  # tubule lumen
    "cytoplasm": 2,  # cell bodies
    "nucleus": 3,
    "lipid_droplet": 4,
    "collagen": 5,  # lamina propria, fibrosis (SHG active)
    "protein_droplet": 6,  # dense protein bodies
    "interstitium": 7,  # loose connective tissue between tubules
    "standard": 8,  # uniform calibration standard
    "vessel": 9,  # blood vessel: endothelial wall, plasma, red blood cells
})
