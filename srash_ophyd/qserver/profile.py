"""What the queueserver worker's namespace holds, built from environment variables.

:func:`build_profile` makes the beamline-style session (:func:`srash_ophyd.session.
make_session`: the simulated microscope, the RunEngine writing every run into the embedded
or served catalog behind the run journal, the suspenders), subscribes the live LBNet-Dx
callbacks (:func:`srash_ophyd.session.attach_live_dx`) and adds two things a queue needs
that a shell user does by hand:

- every run's start document gets the session's metadata (``session.run_md()``: specimen,
  phenotype/diagnosis, seeds, simulator settings, the instrument calibration LBNet-Dx needs)
  under the queue item's own ``md``, by a RunEngine preprocessor (:func:`session_md`);
- a queue item ends when its live analysis runs are in the catalog (:class:`DrainAtStop`):
  the worker process has no shutdown hook, so an analysis still queued when the environment
  closes would be lost.

Environment variables (read when the environment opens; a bad value raises
:class:`ProfileError` naming the variable, shown in the manager's log):

==========================  ======================================================  =========
variable                    meaning                                                 default
==========================  ======================================================  =========
``SRASH_DATA_DIR``          data directory (frames; embedded catalog)               ./srash-data
``SRASH_CATALOG_URL``       tiled server of the catalog instead of the embedded     (embedded)
                            one; its API key from ``TILED_API_KEY``
``SRASH_QS_SPECIMEN``       simulated specimen (testis, cells, beads, reference)    testis
``SRASH_QS_PHENOTYPE``      testis phenotype (normal, NOA-SPT, NOA-SPG, NOA-SCO)    normal
``SRASH_QS_SEED``           specimen seed                                           0
``SRASH_QS_NOISE_SEED``     instrument noise / session seed                         0
``SRASH_QS_PIXELS``         pixels per field side                                   1200
``SRASH_QS_FOV_UM``         field of view, um                                       360
``SRASH_QS_AVERAGES``       frames averaged per image                               3
``SRASH_QS_LIVE_DX``        live LBNet-Dx tasks, comma separated, each ``TASK`` or  both tasks
                            ``TASK=WEIGHTS.pt``; ``off`` for none
``SRASH_QS_DX_WAIT_S``      longest wait of a queue item for its analyses, s        600
==========================  ======================================================  =========

The defaults are the paper's fields (1200 x 1200 px at 0.3 um/px) and the demo's two
classifiers (normal vs NOA, SPT vs SPG).
"""

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import SrashError

__all__ = ["ENV", "DrainAtStop", "Profile", "ProfileError", "build_profile",
           "full_plans", "session_md", "settings_from_env"]

log = logging.getLogger("srash.qserver")

#: the variables :func:`build_profile` reads, with their defaults (None: not set)
ENV: dict[str, str | None] = {
    "SRASH_DATA_DIR": None, "SRASH_CATALOG_URL": None,
    "SRASH_QS_SPECIMEN": "testis", "SRASH_QS_PHENOTYPE": None, "SRASH_QS_SEED": "0",
    "SRASH_QS_NOISE_SEED": "0", "SRASH_QS_PIXELS": "1200", "SRASH_QS_FOV_UM": "360",
    "SRASH_QS_AVERAGES": "3", "SRASH_QS_LIVE_DX": "normal-vs-noa,spt-vs-spg",
    "SRASH_QS_DX_WAIT_S": "600",
}


class ProfileError(SrashError):
    """A queueserver profile setting (environment variable) that cannot be used."""


def full_plans() -> dict[str, Callable[..., Any]]:
    """The SRASH full plans a queue item can name, by name.

    ``survey_tiles`` is a full plan too but takes a :class:`plans.TileGrid` object, which a
    queue item (JSON) cannot carry; queue it as ``mosaic(survey=True, survey_kwargs=...)``.

    ``diagnose`` (:mod:`plans.adaptive`, the closed loop) reads the process's feedback
    mailbox, which the normal-vs-NOA live classifier of the profile feeds; from a queue its
    ``survey_kwargs`` can carry numbers only (``{"background": 0.0, "survey_pixels": 24}``:
    without the scanner devices the survey frames keep the scanner's pixels).
    """
    from plans import dark_frames, flat_field, hyperspectral_stack, mosaic, power_reference
    from plans.adaptive import diagnose

    return {"mosaic": mosaic, "hyperspectral_stack": hyperspectral_stack,
            "dark_frames": dark_frames, "flat_field": flat_field,
            "power_reference": power_reference, "diagnose": diagnose}


def session_md(session: Any) -> Callable[[Any], Any]:
    """RunEngine preprocessor: each ``open_run`` gets ``session.run_md()`` (computed at that
    moment, so the calibration follows the current settings) beneath the plan's own
    metadata (the plan's, and so the queue item's ``md``, wins)."""
    from bluesky.preprocessors import msg_mutator

    def mutate(msg: Any) -> Any:
        if msg.command != "open_run":
            return msg
        return msg._replace(kwargs={**session.run_md(), **msg.kwargs})

    def preprocessor(plan: Any) -> Any:
        return msg_mutator(plan, mutate)

    return preprocessor


class DrainAtStop:
    """Document callback subscribed after the live classifiers: at a run's ``stop`` it
    waits (up to ``timeout_s``) until each live handle has processed every document, so
    the RunEngine (and the queue item) returns once the analysis runs are written."""

    def __init__(self, handles: list[Any], timeout_s: float) -> None:
        self.handles = handles
        self.timeout_s = timeout_s

    def __call__(self, name: str, doc: dict) -> None:
        if name != "stop":
            return
        for h in self.handles:
            if not h.wait(self.timeout_s):
                log.warning("live LBNet-Dx still busy %g s after the stop of run %s; the "
                            "queue goes on (the analysis run follows when it finishes)",
                            self.timeout_s, doc.get("run_start"))


@dataclass
class Profile:
    """The worker namespace's pieces (see module doc)."""

    session: Any
    live: list[Any] = field(default_factory=list)
    plans: dict[str, Callable[..., Any]] = field(default_factory=dict)

    def namespace(self) -> dict[str, Any]:
        """``RE``, ``mic``, ``catalog``, ``session``, ``live_dx`` and the plans."""
        s = self.session
        return {"RE": s.RE, "mic": s.mic, "catalog": s.catalog, "session": s,
                "live_dx": self.live, **self.plans}


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return value if value not in (None, "") else ENV[name]


def _number(env: Mapping[str, str], name: str, kind: type, low: float) -> Any:
    text = _get(env, name)
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise ProfileError(f"{name}={text!r} not understood: give a {kind.__name__} "
                           f">= {low:g}") from None
    if not value >= low:
        raise ProfileError(f"{name}={text!r} not allowed: must be >= {low:g}")
    return value


def _dx_specs(text: str | None) -> list[tuple[str, Path | None]]:
    """``SRASH_QS_LIVE_DX`` -> [(task, weights or None)]."""
    if text is None or text.strip().lower() in ("", "off", "none", "0", "false"):
        return []
    from ml.dx.predict import TASKS

    out = []
    for part in text.split(","):
        task, _, path = part.strip().partition("=")
        if task not in TASKS:
            raise ProfileError(f"SRASH_QS_LIVE_DX: unknown task {task!r}; use "
                               f"{', '.join(sorted(TASKS))} (TASK or TASK=WEIGHTS.pt, comma "
                               "separated) or off")
        weights = Path(path).expanduser() if path else None
        if weights is not None and not weights.is_file():
            raise ProfileError(f"SRASH_QS_LIVE_DX: weights file {str(weights)!r} of task "
                               f"{task!r} does not exist")
        out.append((task, weights))
    return out


def settings_from_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The profile's settings from ``env`` (default ``os.environ``), every value checked
    (:class:`ProfileError` naming the variable) before anything is built."""
    from plans.contract import PHENOTYPES
    from simulators.specimens import SPECIMEN_KINDS

    env = os.environ if env is None else env
    specimen, phenotype = _get(env, "SRASH_QS_SPECIMEN"), _get(env, "SRASH_QS_PHENOTYPE")
    if specimen not in SPECIMEN_KINDS:
        raise ProfileError(f"SRASH_QS_SPECIMEN={specimen!r} not known: use one of "
                           f"{', '.join(SPECIMEN_KINDS)}")
    if phenotype is not None and phenotype not in PHENOTYPES:
        raise ProfileError(f"SRASH_QS_PHENOTYPE={phenotype!r} not known: use one of "
                           f"{', '.join(PHENOTYPES)}")
    return {
        "live_dx": _dx_specs(_get(env, "SRASH_QS_LIVE_DX")),
        "dx_wait_s": _number(env, "SRASH_QS_DX_WAIT_S", float, 0.0),
        "session": {
            "data_dir": _get(env, "SRASH_DATA_DIR"),
            "catalog_uri": _get(env, "SRASH_CATALOG_URL"),
            "specimen": specimen, "phenotype": phenotype,
            "seed": _number(env, "SRASH_QS_SEED", int, 0),
            "noise_seed": _number(env, "SRASH_QS_NOISE_SEED", int, 0),
            "pixels": _number(env, "SRASH_QS_PIXELS", int, 8),
            "fov_um": _number(env, "SRASH_QS_FOV_UM", float, 1e-3),
            "averages": _number(env, "SRASH_QS_AVERAGES", int, 1)},
    }


def build_profile(env: Mapping[str, str] | None = None) -> Profile:
    """Build the session, the live classifiers and the plan table from ``env``
    (default ``os.environ``; variables in the module doc)."""
    from ml.dx.predict import LBNetDx

    from ..closedloop import attach_closed_loop
    from ..session import attach_live_dx, make_session

    settings = settings_from_env(env)
    classifiers = [LBNetDx.load(weights, task=task) for task, weights in settings["live_dx"]]
    session = make_session(progress=False, **settings["session"])
    live: list[Any] = []
    try:
        session.RE.preprocessors.append(session_md(session))
        for dx in classifiers:  # normal vs NOA also feeds plans.adaptive.diagnose
            attach = attach_closed_loop if dx.task.name == "normal-vs-noa" else attach_live_dx
            live.append(attach(session, dx))
        if live:
            drain = DrainAtStop(live, settings["dx_wait_s"])
            session.tokens["live_dx_drain"] = session.RE.subscribe(drain)
    except BaseException:
        for handle in live:
            handle.close(0)
        session.close()
        raise
    return Profile(session=session, live=live, plans=full_plans())
