"""Startup module of the SRASH bluesky-queueserver profile.

    start-re-manager --startup-module srash_ophyd.qserver.startup ...

(``python -m srash_ophyd.qserver`` runs that command line with the other paths filled in;
README "Facility"). The RE worker imports this module each time its environment opens and
takes its globals as the namespace, so it defines only what a queue item may name: the
RunEngine ``RE`` (writing into the catalog, with the live LBNet-Dx analyses), the simulated
microscope ``mic`` (a queue item names its parts as ``"mic.raman"``, ``"mic.xyz.x"``...),
``catalog`` and the full plans. The settings come from environment variables
(:mod:`srash_ophyd.qserver.profile`).
"""

from srash_ophyd.qserver.profile import build_profile as _build_profile

_profile = _build_profile()

RE = _profile.session.RE
mic = _profile.session.mic
catalog = _profile.session.catalog
session = _profile.session
live_dx = _profile.live

mosaic = _profile.plans["mosaic"]
hyperspectral_stack = _profile.plans["hyperspectral_stack"]
dark_frames = _profile.plans["dark_frames"]
flat_field = _profile.plans["flat_field"]
power_reference = _profile.plans["power_reference"]
