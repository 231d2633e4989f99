"""The IOC's records without a network: every PV the EPICS devices use exists, and the
IOC-side fault schedule (``srash ioc --modelock-loss-at``) loses and restores mode-lock."""

import asyncio

import pytest


@pytest.fixture(scope="module")
def ioc():
    from srash_ophyd.ioc import build_ioc

    return build_ioc("UNIT:", seed=1, noise_seed=2, pixels=16, fov_um=20.0,
                     modelock_loss_at=1, modelock_down_s=0.05)


def test_every_device_pv_is_served(ioc):
    import ophyd

    from srash_ophyd.devices.epics import EpicsSRASHMicroscope, ensure_control_layer

    if ensure_control_layer() == "dummy":
        pytest.skip("no EPICS control layer")
    mic = EpicsSRASHMicroscope("UNIT:", name="m", data_dir=".")
    try:
        names = {w.item.pvname for w in mic.walk_signals() if hasattr(w.item, "pvname")}
        names |= {getattr(w.item, "setpoint_pvname", w.item.pvname)
                  for w in mic.walk_signals() if hasattr(w.item, "setpoint_pvname")}
    finally:
        mic.destroy()
    assert names, "no PVs found"

    def served(name):
        if name in ioc.pvdb:
            return True
        base, _, field = name.partition(".")  # a field of a motor record
        return base in ioc.pvdb and (field == "VAL" or field in ioc.pvdb[base].fields)

    assert all(served(n) for n in names), sorted(n for n in names if not served(n))
    assert ophyd.cl.name == "caproto"


def test_scheduled_modelock_loss_and_relock(ioc):
    async def run():
        ioc._scheduled_faults(0)
        assert ioc.sim.pump.mode_locked
        ioc._scheduled_faults(1)  # the scheduled acquisition
        assert not ioc.sim.pump.mode_locked
        await asyncio.sleep(0.3)
        assert ioc.sim.pump.mode_locked

    asyncio.run(run())


def test_bad_prefix_and_time_scale_are_refused():
    from simulators.errors import SettingsError
    from srash_ophyd.errors import SrashError
    from srash_ophyd.ioc import build_ioc

    with pytest.raises(SrashError, match="prefix"):
        build_ioc("BAD PREFIX:")
    with pytest.raises(SettingsError, match="time_scale"):
        build_ioc("OK:", time_scale=50)
