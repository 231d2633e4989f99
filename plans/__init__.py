"""SRASH bluesky plans: what the instrument does.

Generators composed from :mod:`bluesky.plan_stubs` and :mod:`bluesky.preprocessors`. They
take devices as arguments typed with :mod:`bluesky.protocols` and import no device
module; the few attribute/key names they rely on are documented where used (the
detector's ``*_srs_mean`` reading for the survey; shutters True = open).

Plan stubs (no run): :func:`tune_raman_shift`, :func:`srash_field`, :func:`acquire_frame`.
Plans (one run each): :func:`mosaic` (with :func:`survey_tiles`), :func:`hyperspectral_stack`,
:func:`dark_frames`, :func:`power_reference`, :func:`flat_field`; :func:`diagnose` (two runs:
survey, then the closed-loop diagnosis; :mod:`plans.adaptive`).
Geometry: :func:`tile_grid` / :class:`TileGrid`. Suspenders: :func:`make_suspenders`.
Event layout of a field: :mod:`plans.stubs` and :mod:`plans.markers`.
"""

import importlib
from typing import Any

# Names are loaded on first use (PEP 562), so that ``import plans.contract`` (which ml may do)
# does not import bluesky and every plan module with it.
_WHERE = {
    "DiagnosisFeedback": "adaptive", "StopRule": "adaptive", "default_feedback": "adaptive",
    "diagnose": "adaptive", "rank_tiles": "adaptive",
    "dark_frames": "calibration", "flat_field": "calibration", "flat_field_map": "calibration",
    "power_reference": "calibration",
    "GridError": "grid", "TileGrid": "grid", "tile_grid": "grid",
    "FIELD_KEYS": "markers", "FieldMarker": "markers",
    "SurveyResult": "scans", "hyperspectral_stack": "scans", "mosaic": "scans",
    "survey_tiles": "scans",
    "COMPOSITE_CHANNELS": "stubs", "DEFAULT_SHIFTS_CM1": "stubs", "DeviceFailure": "stubs",
    "acquire_frame": "stubs", "composite_recipe": "stubs", "srash_field": "stubs",
    "tune_raman_shift": "stubs",
    "InterlockSuspender": "suspenders", "ModeLockSuspender": "suspenders",
    "make_suspenders": "suspenders",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'plans' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = [
    "COMPOSITE_CHANNELS", "DEFAULT_SHIFTS_CM1", "DeviceFailure", "DiagnosisFeedback",
    "FIELD_KEYS", "FieldMarker", "StopRule", "default_feedback", "diagnose", "rank_tiles",
    "GridError",
    "InterlockSuspender", "ModeLockSuspender", "SurveyResult", "TileGrid", "acquire_frame",
    "composite_recipe", "dark_frames", "flat_field", "flat_field_map", "hyperspectral_stack",
    "make_suspenders", "mosaic", "power_reference", "srash_field", "survey_tiles",
    "tile_grid", "tune_raman_shift",
]
