"""Part devices: names, kinds, units, limits, safety, faults, timing, EPICS variants."""

from __future__ import annotations

import time

import pytest
from bluesky.protocols import (
    Configurable,
    Locatable,
    Movable,
    Readable,
    Stageable,
    Triggerable,
    WritesStreamAssets,
)
from ophyd import Kind
from ophyd.utils import LimitError

from simulators.errors import SafetyLimitError
from simulators.parts.lasers import PumpLaserSim
from simulators.parts.stage import XYZStageSim
from simulators.spectra import pump_nm_for_shift
from srash_ophyd.devices._sim import DeviceFault, LaserSafetyError
from srash_ophyd.devices.eom import EOM
from srash_ophyd.devices.lasers import EpicsPumpLaser, PumpLaser, StokesLaser
from srash_ophyd.devices.lockin import LockInAmplifier
from srash_ophyd.devices.pmt import PMT
from srash_ophyd.devices.raman import RamanShiftAxis
from srash_ophyd.devices.scanner import GalvoScanner
from srash_ophyd.devices.stage import EpicsXYZStage, XYZStage


def test_protocols(mic):
    for proto in (Readable, Triggerable, Stageable, WritesStreamAssets, Configurable):
        assert isinstance(mic, proto), proto
        assert isinstance(mic.detector, proto), proto
    for axis in (mic.raman, mic.xyz.x, mic.xyz.y, mic.xyz.z, mic.pump.wavelength):
        assert isinstance(axis, Movable) and isinstance(axis, Readable)
    assert isinstance(mic.xyz.x, Locatable)
    for part in (mic.pump, mic.stokes, mic.eom, mic.photodiode, mic.lockin, mic.pmt,
                 mic.scanner, mic.xyz):
        assert isinstance(part, Readable) and isinstance(part, Configurable)


def test_read_describe_keys_agree(mic):
    for dev in (mic, mic.pump, mic.stokes, mic.raman, mic.eom, mic.photodiode, mic.lockin,
                mic.pmt, mic.scanner, mic.xyz, mic.detector):
        desc = dev.describe()
        stream = {k for k, v in desc.items() if v.get("external") == "STREAM:"}
        assert set(dev.read()) == set(desc) - stream, dev.name
        assert set(dev.read_configuration()) == set(dev.describe_configuration()), dev.name


def test_units_kinds_and_configuration(mic):
    cfg = mic.describe_configuration()
    for key, unit in [("srash_pump_power", "mW"), ("srash_stokes_wavelength", "nm"),
                      ("srash_scanner_dwell", "s"), ("srash_lockin_time_constant", "s"),
                      ("srash_pmt_voltage", "V"), ("srash_eom_frequency", "Hz"),
                      ("srash_scanner_fov", "um")]:
        assert cfg[key]["units"] == unit, key
    for key in ("srash_stokes_power", "srash_scanner_pixels", "srash_scanner_averages",
                "srash_lockin_filter_order", "srash_lockin_sensitivity", "srash_pmt_gain"):
        assert key in cfg
    assert mic.xyz.x.egu == "um" and mic.raman.shift.egu == "cm^-1"
    assert mic.pump.power.kind == Kind.config
    assert mic.describe()["srash_xyz_x"]["units"] == "um"


def test_raman_round_trip(mic):
    st = mic.raman.set(2850)
    assert st.done and st.success
    assert mic.pump.wavelength.position == pytest.approx(float(pump_nm_for_shift(2850, 1031.0)))
    assert abs(mic.raman.position.shift - 2850) < 0.01
    assert abs(mic.raman.shift.readback.get() - 2850) < 0.01
    # tuning the pump directly is seen by the Raman axis (same part, live readback)
    mic.pump.wavelength.set(790.9).wait(1)
    assert mic.raman.shift.readback.get() == pytest.approx(2944.5, abs=0.1)


def test_limits_raise_before_moving(mic):
    x0 = mic.xyz.x.position
    with pytest.raises(LimitError):
        mic.xyz.x.set(1e6)
    assert mic.xyz.x.position == x0 and mic.sim.stage.target["x"] == x0
    nm0 = mic.pump.wavelength.position
    with pytest.raises(LimitError):
        mic.pump.wavelength.set(1200)
    with pytest.raises(LimitError):
        mic.raman.set(6000)
    assert mic.pump.wavelength.position == nm0
    with pytest.raises(LimitError):
        mic.scanner.dwell.set(1.0)
    with pytest.raises(LimitError):
        mic.pmt.voltage.set(2000)
    assert mic.pmt.voltage.get() == 700.0


def test_power_safety_refused(mic):
    with pytest.raises(SafetyLimitError) as info:
        mic.pump.power.set(120.0)
    assert isinstance(info.value, LimitError) and isinstance(info.value, LaserSafetyError)
    assert "safety limit" in str(info.value)
    assert mic.pump.power.get() == 40.0
    mic.pump.power.set(100.0)  # 100 + 40 is allowed
    with pytest.raises(LaserSafetyError):
        mic.stokes.power.set(60.0)
    assert mic.stokes.power.get() == 40.0


def test_settings_reach_the_parts(mic):
    mic.lockin.time_constant.set(1e-5)
    mic.lockin.filter_order.set(4)
    mic.pmt.voltage.set(650)
    mic.scanner.averages.set(2)
    mic.eom.frequency.set(10e6)
    s = mic.sim.settings()
    assert s["lockin"]["tau_s"] == 1e-5 and s["lockin"]["order"] == 4
    assert s["pmt"]["voltage"] == 650 and s["scanner"]["averages"] == 2
    assert mic.lockin.reference_frequency.get() == 10e6  # follows the EOM
    with pytest.raises(ValueError):
        mic.lockin.sensitivity.set(3e-3)  # not in the 1-2-5 sequence


def test_stage_following_error_fails_move(mic):
    seen = []
    mic.xyz.following_error.subscribe(lambda value, **kw: seen.append(value), run=False)
    mic.sim.stage.inject_following_error()
    st = mic.xyz.x.set(100.0)
    assert st.done and not st.success
    assert isinstance(st.exception(), DeviceFault)
    assert "following error" in str(st.exception())
    assert mic.xyz.following_error.get() is True and True in seen
    mic.xyz.clear_fault()
    assert mic.xyz.x.set(100.0).success and mic.xyz.following_error.get() is False


def test_time_scale_paces_moves(mic):
    mic.time_scale = 1e-3  # tuning 796.9 -> 790.9 nm takes ~3.2 s: ~3 ms here
    st = mic.raman.set(2944.5)
    assert not st.done
    st.wait(timeout=5)
    assert st.success and abs(mic.raman.position.shift - 2944.5) < 0.01
    mic.time_scale = 0.05  # stage: 500 um at 5 mm/s + settle = 0.15 s -> 7.5 ms
    st = mic.xyz.x.set(500.0)
    assert not st.done and mic.xyz.x.position == 0.0  # moves when the status finishes
    st.wait(timeout=5)
    assert st.success and mic.xyz.x.position == pytest.approx(500.0, abs=10)
    mic.time_scale = 0.0
    assert mic.xyz.x.set(0.0).done


def test_time_scale_paces_trigger(mic):
    mic.time_scale = 0.02  # one 32x32 frame ~ 12 ms real -> ~0.2 ms
    mic.stage()
    try:
        t0 = time.monotonic()
        st = mic.trigger()
        st.wait(timeout=5)
        assert st.success and time.monotonic() >= t0
    finally:
        mic.unstage()


def test_standalone_devices_have_their_own_parts():
    a, b = PumpLaser(name="a"), PumpLaser(name="b")
    assert a.backend is not b.backend and isinstance(a.backend, PumpLaserSim)
    a.wavelength.set(800).wait(1)
    assert b.wavelength.position != 800
    # no interlock outside a microscope: only the part's own range applies
    a.power.set(100.0)
    with pytest.raises(LimitError):
        a.power.set(1000.0)
    for cls in (StokesLaser, EOM, LockInAmplifier, PMT, GalvoScanner, RamanShiftAxis):
        dev = cls(name="d")
        assert set(dev.read()) == set(dev.describe())
    shared = XYZStageSim()
    s1, s2 = XYZStage(name="s1", backend=shared), XYZStage(name="s2", backend=shared)
    s1.x.set(10).wait(1)
    assert s2.x.position == 10.0


def test_pump_mode_lock_signal(mic):
    seen = []
    mic.pump.mode_locked.subscribe(lambda value, **kw: seen.append(value), run=False)
    mic.sim.pump.inject_modelock_loss()
    assert mic.pump.mode_locked.get() is False and seen == [False]
    mic.sim.pump.restore_modelock()
    assert mic.pump.mode_locked.get() is True


def test_epics_variants_have_the_same_names_and_kinds():
    from srash_ophyd.devices import epics
    from srash_ophyd.devices.microscope import SRASHMicroscope

    assert set(EpicsPumpLaser.component_names) == set(PumpLaser.component_names)
    assert set(EpicsXYZStage.component_names) == set(XYZStage.component_names)
    pairs = [(SRASHMicroscope, epics.EpicsSRASHMicroscope)]
    for attr in SRASHMicroscope.component_names:
        pairs.append((getattr(SRASHMicroscope, attr).cls,
                      getattr(epics.EpicsSRASHMicroscope, attr).cls))
    for sim, ca in pairs:
        for attr in sim.component_names:  # every simulated component, same kind
            assert attr in ca.component_names, (ca.__name__, attr)
            assert getattr(sim, attr).kind == getattr(ca, attr).kind, (ca.__name__, attr)
        for attr in set(ca.component_names) - set(sim.component_names):  # EPICS records
            assert getattr(ca, attr).kind.name == "omitted", (ca.__name__, attr)


def test_epics_variants_instantiate_without_ioc():
    import ophyd

    if ophyd.get_cl().name == "dummy":
        pytest.skip("no EPICS control layer (caproto or pyepics) installed")
    pump = EpicsPumpLaser("SRASH:PUMP:", name="pump")
    stage = EpicsXYZStage("SRASH:STAGE:", name="stage")
    assert pump.wavelength.setpoint.pvname == "SRASH:PUMP:Wavelength-SP"
    assert pump.mode_locked.pvname == "SRASH:PUMP:ModeLocked-RB"
    assert stage.x.setpoint.pvname == "SRASH:STAGE:X.VAL"
    assert not pump.connected and not stage.connected
    pump.destroy()
    stage.destroy()
