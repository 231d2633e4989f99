"""The bluesky-queueserver profile without a server: the full plans are bluesky plans the
queueserver lists and validates, the shipped permissions let operators run them, the
profile's settings are checked, run metadata is added, the launcher's command line.
(The manager itself, against Redis: tests/system/test_qserver_e2e.py.)"""

import inspect
import logging
import typing

import pytest

FULL_PLANS = {"mosaic", "hyperspectral_stack", "dark_frames", "flat_field", "power_reference",
              "diagnose"}

MOSAIC = {"name": "mosaic", "args": [["mic"], "mic.raman", "mic.xyz.x", "mic.xyz.y"],
          "kwargs": {"rows": 1, "cols": 2, "fov_um": 10.0, "overlap": 0.1,
                     "shifts_cm1": [2850.0, 2930.0], "md": {"sample_id": "S-001"}}}


@pytest.fixture(scope="module")
def lists():
    """Existing and (group ``primary``) allowed plans and devices of the profile's plans
    and a small microscope, as the manager computes them."""
    from bluesky_queueserver.manager.profile_ops import (
        existing_plans_and_devices_from_nspace,
        load_allowed_plans_and_devices,
    )

    from srash_ophyd.devices.factory import make_microscope
    from srash_ophyd.qserver import PERMISSIONS
    from srash_ophyd.qserver.profile import full_plans

    mic = make_microscope("beads", pixels=16, fov_um=10.0)
    plans, devices, _, _ = existing_plans_and_devices_from_nspace(
        nspace={**full_plans(), "mic": mic})
    allowed_plans, allowed_devices = load_allowed_plans_and_devices(
        path_user_group_permissions=str(PERMISSIONS), existing_plans=plans,
        existing_devices=devices)
    return {"plans": plans, "devices": devices, "allowed_plans": allowed_plans["primary"],
            "allowed_devices": allowed_devices["primary"]}


def test_every_full_plan_is_a_plan_with_annotations_resolvable_at_run_time():
    from bluesky.utils import is_plan

    import plans
    from srash_ophyd.qserver.profile import full_plans

    # marked by full_plan (the stubs are generator functions, bluesky plans as such)
    marked = {n for n in plans.__all__ if getattr(getattr(plans, n), "_is_plan_", False)}
    assert marked == FULL_PLANS | {"survey_tiles"}  # survey_tiles takes a TileGrid object
    assert all(is_plan(getattr(plans, n)) for n in marked)
    assert set(full_plans()) == FULL_PLANS
    for name in marked:
        fn = getattr(plans, name)
        typing.get_type_hints(fn)  # raises on an annotation that does not resolve
        for p in inspect.signature(fn).parameters.values():
            assert not isinstance(p.annotation, str), (name, p.name)


def test_a_rejected_argument_raises_cleanly_and_a_dropped_plan_warns():
    from plans import hyperspectral_stack
    from plans.errors import PlanError
    from srash_ophyd.devices.factory import make_microscope

    mic = make_microscope("beads", pixels=16, fov_um=10.0)
    # bad input raises at the call (nothing half-built left for Plan.__del__: pytest turns
    # an "Exception ignored in __del__" into a failure here)
    with pytest.raises(PlanError, match="step_cm1"):
        hyperspectral_stack([mic], mic.raman, start_cm1=2800, stop_cm1=3000, step_cm1=0)
    with pytest.warns(RuntimeWarning, match="hyperspectral_stack` was never iterated"):
        plan = hyperspectral_stack([mic], mic.raman, start_cm1=2800, stop_cm1=2900,
                                   step_cm1=50)
        del plan


def test_the_queueserver_lists_every_full_plan_and_the_microscope(lists):
    assert set(lists["plans"]) == FULL_PLANS
    assert set(lists["allowed_plans"]) == FULL_PLANS  # operators may run every one
    assert set(lists["devices"]) == {"mic"} and "mic" in lists["allowed_devices"]
    parts = lists["devices"]["mic"]["components"]
    assert {"raman", "xyz"} <= set(parts) and {"x", "y"} <= set(parts["xyz"]["components"])
    params = {p["name"]: p for p in lists["plans"]["mosaic"]["parameters"]}
    assert params["fov_um"]["annotation"] == {"type": "float"}
    assert "default" not in params["fov_um"]  # required
    assert params["raman"]["annotation"] == {"type": "__MOVABLE__"}


def test_validate_plan_accepts_a_mosaic_and_rejects_bad_items(lists):
    from bluesky_queueserver import validate_plan

    def check(item):
        return validate_plan(item, allowed_plans=lists["allowed_plans"],
                             allowed_devices=lists["allowed_devices"])

    assert check(MOSAIC) == (True, "")
    stack = {"name": "hyperspectral_stack", "args": [["mic"], "mic.raman"],
             "kwargs": {"start_cm1": 2850, "stop_cm1": 2950, "step_cm1": 50}}
    assert check(stack) == (True, "")
    bad = [
        ({"rows": "many"}, "rows"),                   # not an integer
        ({"fov_um": None}, "fov_um"),                 # required float
        ({"shifts_cm1": "2850"}, "shifts_cm1"),       # not a sequence of numbers
        ({"pixel_size": 0.3}, "pixel_size"),          # no such parameter
    ]
    for change, word in bad:
        ok, msg = check({**MOSAIC, "kwargs": {**MOSAIC["kwargs"], **change}})
        assert not ok and word in msg, change
    ok, msg = check({**MOSAIC, "kwargs": {k: v for k, v in MOSAIC["kwargs"].items()
                                          if k != "fov_um"}})
    assert not ok and "fov_um" in msg
    ok, msg = check({**MOSAIC, "name": "survey_tiles"})
    assert not ok and "survey_tiles" in msg


def test_settings_from_env_check_every_value_first(tmp_path):
    from srash_ophyd.qserver.profile import ProfileError, settings_from_env

    s = settings_from_env({"SRASH_DATA_DIR": str(tmp_path)})
    assert [t for t, _ in s["live_dx"]] == ["normal-vs-noa", "spt-vs-spg"]
    assert s["session"]["data_dir"] == str(tmp_path) and s["session"]["catalog_uri"] is None
    assert s["session"]["pixels"] == 1200 and s["session"]["specimen"] == "testis"
    assert settings_from_env({"SRASH_QS_LIVE_DX": "off"})["live_dx"] == []
    w = tmp_path / "w.pt"
    w.write_bytes(b"")
    assert settings_from_env({"SRASH_QS_LIVE_DX": f"spt-vs-spg={w}"})["live_dx"] == [
        ("spt-vs-spg", w)]
    for env, word in [({"SRASH_QS_PIXELS": "many"}, "SRASH_QS_PIXELS"),
                      ({"SRASH_QS_FOV_UM": "-3"}, "SRASH_QS_FOV_UM"),
                      ({"SRASH_QS_LIVE_DX": "cancer"}, "unknown task"),
                      ({"SRASH_QS_LIVE_DX": f"spt-vs-spg={tmp_path / 'no.pt'}"},
                       "does not exist"),
                      ({"SRASH_QS_SPECIMEN": "liver"}, "SRASH_QS_SPECIMEN"),
                      ({"SRASH_QS_PHENOTYPE": "NOA"}, "SRASH_QS_PHENOTYPE")]:
        with pytest.raises(ProfileError, match=word):
            settings_from_env(env)


def test_session_metadata_goes_under_the_plans_own():
    from bluesky.utils import Msg

    from srash_ophyd.qserver.profile import session_md

    class Stub:
        def run_md(self):
            return {"specimen": "testis", "calibration": {"dark_v": [0.0]}, "sample_id": "x"}

    plan = [Msg("stage", None), Msg("open_run", None, plan_name="mosaic", sample_id="S-1"),
            Msg("close_run", None)]
    out = list(session_md(Stub())(m for m in plan))
    assert out[0] == plan[0] and out[2] == plan[2]
    assert out[1].kwargs == {"specimen": "testis", "calibration": {"dark_v": [0.0]},
                             "sample_id": "S-1", "plan_name": "mosaic"}


def test_a_busy_classifier_is_logged_not_waited_for_forever(caplog):
    from srash_ophyd.qserver.profile import DrainAtStop

    class Handle:
        def __init__(self, done):
            self.done, self.timeouts = done, []

        def wait(self, timeout):
            self.timeouts.append(timeout)
            return self.done

    quick, busy = Handle(True), Handle(False)
    drain = DrainAtStop([quick, busy], 2.5)
    drain("event", {})
    assert quick.timeouts == []  # only at a stop
    with caplog.at_level(logging.WARNING, logger="srash.qserver"):
        drain("stop", {"run_start": "u1"})
    assert quick.timeouts == busy.timeouts == [2.5]
    assert any("u1" in r.getMessage() for r in caplog.records)


def test_launcher_prints_the_manager_command_line(tmp_path, capsys):
    from srash_ophyd.qserver import PERMISSIONS, STARTUP_MODULE
    from srash_ophyd.qserver.launch import main

    assert PERMISSIONS.is_file()
    assert main(["--print", "--data-dir", str(tmp_path), "--port", "61001",
                 "--redis-prefix", "srash_t", "--", "--verbose"]) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"SRASH_DATA_DIR={tmp_path} start-re-manager --startup-module "
                           f"{STARTUP_MODULE} --user-group-permissions {PERMISSIONS}")
    assert f"--existing-plans-devices {tmp_path}/qserver/existing_plans_and_devices.yaml" \
        in line
    assert "--zmq-control-addr tcp://127.0.0.1:61001" in line
    assert "--redis-name-prefix srash_t" in line and line.rstrip().endswith("--verbose")
    assert not (tmp_path / "qserver").exists()  # --print creates nothing


def test_a_redis_that_does_not_answer_stops_the_launcher_with_a_clear_error(tmp_path, capsys):
    """The RE manager would keep retrying Redis without saying so; the launcher asks first
    (a loopback port where nothing listens) and creates nothing."""
    import socket

    from srash_ophyd.qserver.launch import main, redis_problem

    with socket.socket() as s:  # a free port, closed again: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["--data-dir", str(tmp_path / "d"), "--redis-addr",
                 f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert f"Redis at 127.0.0.1:{port} does not answer" in err and "redis-server" in err
    assert "Traceback" not in err and not (tmp_path / "d").exists()
    assert "not HOST:PORT" in (redis_problem("localhost:six") or "")
