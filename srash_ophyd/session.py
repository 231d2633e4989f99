"""The beamline-style session: one call builds RunEngine, microscope, catalog and writer.

>>> from srash_ophyd.session import make_session
>>> s = make_session(data_dir="srash-data", specimen="testis", phenotype="NOA-SCO", seed=3,
...                  pixels=256, fov_um=120.0)
>>> uid, = s.RE(s.plans.mosaic([s.mic], s.mic.raman, s.mic.xyz.x, s.mic.xyz.y,
...                            rows=3, cols=3, fov_um=120.0, md=s.run_md(sample_id="S1")))
>>> s.catalog[uid]
>>> s.close()

What is wired (each piece returned on :class:`Session`, each subscription token in
``tokens`` so it can be removed):

- ``RE``: a :class:`bluesky.RunEngine` subscribed to the catalog's
  :class:`~bluesky_tiled_plugins.TiledWriter` (default batching: flat per-tile cost; the run
  becomes visible to readers at its stop document) behind the run journal
  (:class:`~srash_ophyd.journal.JournaledWriter`: every document on disk as it happens, so a
  killed scan is recovered by ``srash catalog repair``); SIGTERM / SIGHUP during a run abort it
  like Ctrl-C (:class:`~srash_ophyd.signals.TerminationHandler`);
- ``mic``: the simulated :class:`~srash_ophyd.devices.microscope.SRASHMicroscope` writing OME-TIFF
  frames under ``<data_dir>/frames/``;
- progress: a tqdm bar on stderr counting primary events against the start document's
  ``num_points`` (``progress=False`` for none);
- ``best_effort=True``: bluesky's BestEffortCallback (tables; its live plots only with
  ``best_effort_plots=True``), in ``callbacks["bec"]``;
- ``RE.md``: the data directory's persistent session metadata (:mod:`srash_ophyd.runmd`),
  so ``scan_id`` counts up across processes and ``catalog[scan_id]`` finds the run;
- suspenders from :func:`plans.make_suspenders` on the pump's mode-lock status (the
  simulated microscope has no separate shutter-interlock signal): installed unless
  ``suspenders=False``; a suspended mosaic re-acquires the interrupted field.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from plans.contract import diagnosis_of

from .catalog import close_catalog, frames_dir, make_writer, open_catalog, resolve_data_dir
from .devices.factory import make_microscope
from .journal import JournaledWriter, journal_dir
from .signals import TerminationHandler, keep_abort_reason

__all__ = ["PlanOutcome", "Session", "TqdmProgress", "make_session"]


class TqdmProgress:
    """Document callback: a tqdm bar per run over its primary events (``num_points`` of
    the start document as the total when present), written to ``file`` (stderr)."""

    def __init__(self, file=None, desc: str = "scan", unit: str = "frame",
                 disable: bool | None = None) -> None:
        self.file = file if file is not None else sys.stderr
        self.desc = desc
        self.unit = unit
        self.disable = disable
        self._bar = None
        self._primary: set[str] = set()

    def __call__(self, name: str, doc: dict) -> None:
        from tqdm import tqdm

        if name == "start":
            self._close()
            self._primary.clear()
            total = doc.get("num_points")
            self._bar = tqdm(total=total if isinstance(total, int) else None, desc=self.desc,
                             unit=self.unit, file=self.file, disable=self.disable,
                             leave=True, dynamic_ncols=True)
        elif name == "descriptor" and doc.get("name") == "primary":
            self._primary.add(doc["uid"])
        elif name == "event" and doc.get("descriptor") in self._primary and self._bar:
            self._bar.update(1)
        elif name == "event_page" and doc.get("descriptor") in self._primary and self._bar:
            self._bar.update(len(doc.get("seq_num", ())))
        elif name == "stop":
            if self._bar is not None and doc.get("exit_status") != "success":
                self._bar.set_postfix_str(doc.get("exit_status", ""))
            self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def instrument_calibration(sim: Any, *, seed: int = 0) -> dict[str, Any]:
    """The instrument's calibration record at its current settings, for start documents.

    Dark levels: mean of a shutters-closed frame through the same detection chain (what the
    ``dark_frames`` plan measures); volts per unit: pure lipid / dense collagen at the
    reference powers (what ``power_reference`` on the lipid standard measures). Keys as in
    :class:`ml.io.composite.Calibration`; the composite the classifier sees is built from it.
    """
    return {**sim.calibration(np.random.default_rng(seed)),
            "source": "instrument model at the run's settings (dark frame + lipid standard)"}


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line (a database error's own first line, not its SQL)."""
    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's error
    text = str(orig if orig is not None else exc).strip()
    first = text.splitlines()[0] if text else ""
    first = first if len(first) <= limit else first[:limit] + "..."
    return f"{type(orig if orig is not None else exc).__name__}: {first}"


@dataclasses.dataclass(frozen=True)
class PlanOutcome:
    """How :meth:`Session.run` ended: the run uids (on success), the command's exit
    ``code`` (0 done, 1 device failure, 130 Ctrl-C, 128 + N signal N) and a ``message``."""

    uids: tuple[str, ...]
    code: int
    message: str | None

    @property
    def interrupted(self) -> bool:
        """Ctrl-C or a termination signal: the caller should stop, not go on."""
        return self.code >= 128


@dataclasses.dataclass
class Session:
    """What :func:`make_session` built. ``close()`` unsubscribes and shuts the catalog."""

    RE: Any
    mic: Any
    catalog: Any
    writer: Any
    plans: ModuleType
    data_dir: Path
    tokens: dict[str, int]
    specimen_md: dict[str, Any]
    suspenders: list = dataclasses.field(default_factory=list)
    journal: Any = None
    callbacks: dict[str, Any] = dataclasses.field(default_factory=dict)

    def run_md(self, **extra: Any) -> dict[str, Any]:
        """Start-document metadata of this session's specimen plus ``extra`` (None values
        dropped): ``specimen``, ``phenotype``/``diagnosis`` when known, seeds and the
        simulator configuration dump ``sim_settings``."""
        sim = getattr(self.mic, "sim", None)
        if sim is not None:
            settings, calibration = sim.settings(), instrument_calibration(sim)
        else:  # over EPICS: the IOC's simulator says (srash_ophyd.devices.epics)
            settings = self.mic.sim_settings()
            calibration = {**self.mic.calibration(),
                           "source": "the IOC's instrument model at the run's settings "
                                     "(dark frame + lipid standard)"}
        md = {**self.specimen_md, "sim_settings": settings, "calibration": calibration,
              **extra}
        return {k: v for k, v in md.items() if v is not None}

    def run(self, plan: Any) -> "PlanOutcome":
        """Run ``plan`` for a command line: every way it can end becomes a
        :class:`PlanOutcome`, and the run is always closed (finished tiles kept):

        - Ctrl-C (the RunEngine pauses) -> aborted, reason "interrupted by the user (Ctrl-C)",
          code 130;
        - SIGTERM / SIGHUP -> aborted by :class:`~srash_ophyd.signals.TerminationHandler`,
          reason "terminated by SIGTERM", code 128 + signal number;
        - a device failure -> the RunEngine closed the run with "fail" and the device's
          reason, code 1.

        bluesky's own prints go to stderr: stdout is the command's result (``--json``).
        """
        from bluesky.utils import RunEngineInterrupted

        from plans import DeviceFailure

        from .signals import Terminated, exit_status_for

        with contextlib.redirect_stdout(sys.stderr):
            try:
                return PlanOutcome(tuple(self.RE(plan) or ()), 0, None)
            except RunEngineInterrupted:
                self.RE.abort(reason="interrupted by the user (Ctrl-C)")
                return PlanOutcome((), 130, "interrupted")
            except KeyboardInterrupt:
                return PlanOutcome((), 130, "interrupted")
            except Terminated as exc:
                return PlanOutcome((), exit_status_for(exc), str(exc))
            except DeviceFailure as exc:
                return PlanOutcome((), 1, str(exc))
            except Exception as exc:  # noqa: BLE001 - the run is closed with "fail"
                return PlanOutcome((), 1, _one_line(exc))

    def namespace(self) -> dict[str, Any]:
        """Names a shell profile loads: RE, mic, catalog, plans, bps, bp, session, writer;
        the microscope's stage, pump, stokes and raman axis under those names (so that
        bluesky's ``%wa`` lists them by their ophyd labels); the callbacks (``bec``,
        ``preview``) that are subscribed."""
        import bluesky.plan_stubs as bps
        import bluesky.plans as bp

        m = self.mic
        return {"RE": self.RE, "mic": m, "catalog": self.catalog, "plans": self.plans,
                "bps": bps, "bp": bp, "session": self, "writer": self.writer,
                "stage": m.xyz, "pump": m.pump, "stokes": m.stokes, "raman": m.raman,
                **self.callbacks}

    def subscribe(self, name: str, callback: Any) -> Any:
        """Subscribe a document ``callback`` as ``name`` (in :attr:`callbacks` and the
        namespace; unsubscribed at :meth:`close`); returns it."""
        self.tokens[name] = self.RE.subscribe(callback)
        self.callbacks[name] = callback
        return callback

    def close(self) -> None:
        for token in self.tokens.values():
            self.RE.unsubscribe(token)
        self.tokens.clear()
        for s in self.suspenders:
            self.RE.remove_suspender(s)
        if self.journal is not None:
            self.journal.close()
        close_catalog(self.catalog)


def make_session(*, data_dir: str | os.PathLike | None = None, catalog_uri: str | None = None,
                 api_key: str | None = None, specimen: str = "testis",
                 phenotype: str | None = None, seed: int = 0, noise_seed: int = 0,
                 progress: bool = True, best_effort: bool = False,
                 best_effort_plots: bool = False, suspenders: bool = True,
                 durable: bool = True, persist_md: bool = True, RE: Any = None,
                 control: str = "sim", prefix: str = "SRASH:",
                 **microscope_kwargs: Any) -> Session:
    """Build the session (see module doc).

    Parameters
    ----------
    data_dir : path, optional
        Data directory (frames, and the embedded catalog unless ``catalog_uri``); default
        ``$SRASH_DATA_DIR`` or ``./srash-data``. The embedded catalog is created if missing.
    catalog_uri, api_key : str, optional
        A tiled server instead of the embedded catalog. The server must be able to read
        ``<data_dir>/frames`` (its ``readable_storage``).
    specimen, phenotype, seed, noise_seed
        The simulated specimen (:func:`~srash_ophyd.devices.factory.make_microscope`).
    progress : bool
        tqdm bar on stderr per run.
    best_effort, best_effort_plots : bool
        Subscribe bluesky's BestEffortCallback (tables; live plots too with
        ``best_effort_plots``: they need a display and an interactive matplotlib backend).
    suspenders : bool
        Install :func:`plans.make_suspenders` for the microscope.
    durable : bool
        Force every frame file and journal record to disk as the frame finishes (True), so
        finished tiles survive a power loss; False leaves them to the page cache (they still
        survive SIGKILL). Costs: docs/benchmarks.md.
    persist_md : bool
        A new RunEngine's ``RE.md`` is the data directory's persistent session metadata
        (:mod:`srash_ophyd.runmd`: ``<data_dir>/.srash/re-md``), so ``scan_id`` counts up
        across processes; False: a plain ``{}`` (scan ids start at 1 in every process).
    RE : RunEngine, optional
        Use this RunEngine (its ``md`` as it is) instead of a new one.
    control, prefix : str
        ``"sim"`` (in process) or ``"epics"``: the microscope over Channel Access to the
        IOC of PV prefix ``prefix`` (``srash ioc``; its specimen and seeds are then the
        IOC's, and the suspenders also watch its laser-safety interlock). docs/epics.md.
    **microscope_kwargs
        ``pixels``, ``fov_um``, ``averages``, ``dwell_s``, ``x_um``, ``y_um``, ``time_scale``,
        ``name``... for :func:`~srash_ophyd.devices.factory.make_microscope`.
    """
    from bluesky import RunEngine

    import plans

    root = resolve_data_dir(data_dir)
    frames = frames_dir(root)
    mic = make_microscope(specimen, phenotype=phenotype, seed=seed, noise_seed=noise_seed,
                          data_dir=frames, control=control, prefix=prefix,
                          **microscope_kwargs)
    if control == "epics":  # the IOC's specimen and seeds are the run's
        info = mic.ioc_info()
        specimen, phenotype = info.get("specimen", specimen), info.get("phenotype")
        seed, noise_seed = info.get("seed", seed), info.get("noise_seed", noise_seed)
    frames.mkdir(parents=True, exist_ok=True)
    client = open_catalog(root, uri=catalog_uri, api_key=api_key, create=True)
    try:
        if RE is None:  # after the catalog: its checks (read-only...) speak first
            from .runmd import open_session_md, scan_id_source

            RE = RunEngine(open_session_md(root) if persist_md else {},
                           scan_id_source=scan_id_source)
        if TerminationHandler not in RE.context_managers:  # SIGTERM / SIGHUP like Ctrl-C
            RE.context_managers.append(TerminationHandler)
        keep_abort_reason(RE)
        writer = make_writer(client)
        journal = JournaledWriter(writer, journal_dir(root), sync=durable)
        tokens = {"writer": RE.subscribe(journal)}
        callbacks: dict[str, Any] = {}
        if progress:
            tokens["progress"] = RE.subscribe(TqdmProgress())
        if best_effort:
            from bluesky.callbacks.best_effort import BestEffortCallback

            bec = BestEffortCallback()
            if not best_effort_plots:
                bec.disable_plots()
            tokens["bec"] = RE.subscribe(bec)
            callbacks["bec"] = bec
        installed = []
        if suspenders:
            for s in plans.make_suspenders(mic.pump.mode_locked,
                                           getattr(mic, "interlock", None)):
                RE.install_suspender(s)
                installed.append(s)
    except BaseException:
        close_catalog(client)
        raise
    if control == "epics":
        mic.detector.sync_frames_pv.put(bool(durable))
    else:
        mic.detector.sync_frames = durable
    if phenotype is None and specimen == "testis":
        phenotype = "normal"
    md = {"specimen": specimen, "phenotype": phenotype if specimen == "testis" else None,
          "diagnosis": diagnosis_of(phenotype) if specimen == "testis" else None,
          "specimen_seed": int(seed), "noise_seed": int(noise_seed)}
    return Session(RE=RE, mic=mic, catalog=client, writer=writer, plans=plans,
                   data_dir=root, tokens=tokens, specimen_md=md, suspenders=installed,
                   journal=journal, callbacks=callbacks)


def attach_live_dx(target: Any, dx: Any, publish: Any = None, *,
                   target_pixel_um: float | None = None, queue_size: int = 1_000_000,
                   **callback_kwargs: Any) -> Any:
    """Live LBNet-Dx on a session's (or a bare RunEngine's) documents: an
    :class:`ml.dx.live.LBNetDxCallback` subscribed behind a buffering thread, so the
    RunEngine never waits for the classifier. ``publish`` defaults, for a session, to an
    analysis writer on its catalog (a writer of its own: the session's writer is called
    from the RunEngine thread). Returns the :class:`ml.dx.live.LiveDx` handle."""
    from ml.dx.live import LBNetDxCallback, LiveDx

    from .catalog import make_analysis_writer

    RE = getattr(target, "RE", target)
    if publish is None and getattr(target, "catalog", None) is not None:
        publish = make_analysis_writer(target.catalog)
    cb = LBNetDxCallback(dx, publish, target_pixel_um=target_pixel_um, **callback_kwargs)
    return LiveDx(RE, cb, queue_size=queue_size)
