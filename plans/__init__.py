"""SRASH bluesky plans: what the instrument does.

Generators composed from :mod:`bluesky.plan_stubs` and :mod:`bluesky.preprocessors`. They
take devices as arguments typed with :mod:`bluesky.protocols` and import no device
module; the few attribute/key names they rely on are documented where used (the
detector's ``*_srs_mean`` reading for the survey; shutters True = open).

Plan stubs (no run): :func:`tune_raman_shift`, :func:`srash_field`, :func:`acquire_frame`.
Plans (one run each): :func:`mosaic` (with :func:`survey_tiles`), :func:`hyperspectral_stack`,
:func:`dark_frames`, :func:`power_reference`, :func:`flat_field`.
Geometry: :func:`tile_grid` / :class:`TileGrid`. Suspenders: :func:`make_suspenders`.
Event layout of a field: :mod:`plans.stubs` and :mod:`plans.markers`.
"""

from .calibration import dark_frames, flat_field, flat_field_map, power_reference
from .grid import GridError, TileGrid, tile_grid
from .markers import FIELD_KEYS, FieldMarker
from .scans import SurveyResult, hyperspectral_stack, mosaic, survey_tiles
from .stubs import (
                    COMPOSITE_CHANNELS,
                    DEFAULT_SHIFTS_CM1,
                    DeviceFailure,
                    acquire_frame,
                    composite_recipe,
                    srash_field,
                    tune_raman_shift,
)
from .suspenders import InterlockSuspender, ModeLockSuspender, make_suspenders

__all__ = [
    "COMPOSITE_CHANNELS", "DEFAULT_SHIFTS_CM1", "DeviceFailure", "FIELD_KEYS", "FieldMarker",
    "GridError",
    "InterlockSuspender", "ModeLockSuspender", "SurveyResult", "TileGrid", "acquire_frame",
    "composite_recipe", "dark_frames", "flat_field", "flat_field_map", "hyperspectral_stack",
    "make_suspenders", "mosaic", "power_reference", "srash_field", "survey_tiles",
    "tile_grid", "tune_raman_shift",
]
