"""Tests for tensorforge.bench.power.

RAPL is tested on real files: a recorded powercap tree (tests/data/powercap/) copied to a
temporary folder, whose ``energy_uj`` counters the test rewrites to replay a trace.
NVML cannot run on a machine without an NVIDIA GPU, so it is tested through
``NvmlReplay``, a recorded-replay fake of the *pynvml module API* built from
tests/data/nvml/*.json — this mocks only what cannot run here, never the meter itself.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tensorforge.bench.power import (
    NvmlMeter,
    PowerMeter,
    PowerReading,
    PowerUnavailable,
    RaplMeter,
    detect_power_meter,
)
from tensorforge.errors import BackendUnavailable

DATA = Path(__file__).resolve().parents[2] / "data"
POWERCAP = DATA / "powercap"
NVML = DATA / "nvml"


# ----------------------------------------------------------------------------- RAPL helpers


def load_snapshots() -> dict[float, dict[str, int]]:
    snaps: dict[float, dict[str, int]] = defaultdict(dict)
    with open(POWERCAP / "xeon-2s-readings.csv", newline="") as f:
        for row in csv.DictReader(f):
            snaps[float(row["timestamp_s"])][row["zone"]] = int(row["energy_uj"])
    return dict(sorted(snaps.items()))


def write_snapshot(root: Path, snap: dict[str, int]) -> None:
    for zone, value in snap.items():
        (root / zone / "energy_uj").write_text(f"{value}\n")


class ReplayClock:
    """Returns the timestamp the test set last, like time.monotonic() at that moment."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def xeon(tmp_path: Path) -> Path:
    root = tmp_path / "powercap"
    shutil.copytree(POWERCAP / "xeon-2s", root)
    return root


def make_zone(root: Path, dirname: str, name: str, energy_uj: int = 1000, max_uj: int = 10**9) -> Path:
    z = root / dirname
    z.mkdir(parents=True)
    (z / "name").write_text(name + "\n")
    (z / "energy_uj").write_text(f"{energy_uj}\n")
    (z / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return z


# ----------------------------------------------------------------------------- RAPL


def test_rapl_replay_two_readings_exact(xeon: Path) -> None:
    (ta, a), (tb, b), _ = load_snapshots().items()
    clock = ReplayClock()
    meter = RaplMeter(xeon, clock=clock)
    assert isinstance(meter, PowerMeter)
    # core subzones are part of their package and must not be counted
    assert meter.domains == ("package-0", "package-1", "dram-0", "dram-1")
    write_snapshot(xeon, a)
    clock.now = ta
    meter.start()
    write_snapshot(xeon, b)
    clock.now = tb
    r = meter.stop()
    assert r.source == "rapl:package-0+package-1+dram-0+dram-1"
    assert r.domains == pytest.approx(
        {"package-0": 301.245118, "dram-0": 41.377526, "package-1": 287.603952, "dram-1": 39.866208}, abs=1e-9
    )
    assert r.energy_j == pytest.approx(670.092804, abs=1e-9)
    assert r.duration_s == pytest.approx(2.0)
    assert r.avg_power_w == pytest.approx(335.046402, abs=1e-6)
    assert r.notes == ()
    assert json.loads(json.dumps(r.to_dict()))["energy_j"] == r.energy_j


def test_rapl_counter_wraparound(xeon: Path) -> None:
    _, (tb, b), (tc, c) = load_snapshots().items()
    assert c["intel-rapl:0"] < b["intel-rapl:0"]  # the recording does wrap
    clock = ReplayClock()
    meter = RaplMeter(xeon, clock=clock)
    write_snapshot(xeon, b)
    clock.now = tb
    meter.start()
    write_snapshot(xeon, c)
    clock.now = tc
    r = meter.stop()
    assert r.domains["package-0"] == pytest.approx(81162.0, abs=1e-6)
    assert r.energy_j == pytest.approx(180576.0, abs=1e-6)
    assert r.avg_power_w == pytest.approx(334.4, abs=1e-6)


def test_rapl_single_socket_dram_and_amd_style_package(tmp_path: Path) -> None:
    make_zone(tmp_path, "intel-rapl:0", "package-0", 5_000_000)
    make_zone(tmp_path, "intel-rapl:0:0", "core", 1)
    make_zone(tmp_path, "intel-rapl:0:1", "dram", 0)
    m = RaplMeter(tmp_path)
    assert m.source == "rapl:package-0+dram"
    # AMD Zen exposes package-N (+ core) zones through the same interface, no dram
    amd = tmp_path / "amd"
    make_zone(amd, "intel-rapl:0", "package-0")
    make_zone(amd, "intel-rapl:0:0", "core")
    assert RaplMeter(amd).source == "rapl:package-0"


def test_rapl_psys_only_without_package_and_mmio_duplicate_skipped(tmp_path: Path) -> None:
    make_zone(tmp_path / "a", "intel-rapl:0", "psys")
    assert RaplMeter(tmp_path / "a").source == "rapl:psys"
    # with a package present, psys (whole platform) would double count; mmio repeats package-0
    make_zone(tmp_path / "b", "intel-rapl:0", "package-0")
    make_zone(tmp_path / "b", "intel-rapl:1", "psys")
    make_zone(tmp_path / "b", "intel-rapl-mmio:0", "package-0")
    assert RaplMeter(tmp_path / "b").source == "rapl:package-0"


def test_rapl_stop_before_start(xeon: Path) -> None:
    with pytest.raises(RuntimeError, match="before start"):
        RaplMeter(xeon).stop()


def test_rapl_absent_root(tmp_path: Path) -> None:
    got = RaplMeter.probe(tmp_path / "nope")
    assert isinstance(got, PowerUnavailable)
    assert "no RAPL powercap zones under" in got.reason
    with pytest.raises(BackendUnavailable, match="no RAPL"):
        RaplMeter(tmp_path / "nope")
    empty = tmp_path / "empty"
    (empty / "intel-rapl").mkdir(parents=True)  # control type only, no zones
    assert "no RAPL powercap zones" in RaplMeter.probe(empty).reason  # type: ignore[union-attr]


NOBODY = 65534


def probe_unprivileged(root: Path) -> tuple[str, tuple[str, ...]]:
    """RaplMeter.probe(root) as a user without root's read-anything power.

    Root reads a chmod 000 file, so as root the probe runs in a forked child that drops
    to uid/gid 65534 (nobody) first. Returns ("OK", notes) or ("NA", (reason,)).
    """
    if os.geteuid() != 0:
        got = RaplMeter.probe(root)
        return ("NA", (got.reason,)) if isinstance(got, PowerUnavailable) else ("OK", got.notes)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            got = RaplMeter.probe(root)
            parts = ["NA", got.reason] if isinstance(got, PowerUnavailable) else ["OK", *got.notes]
            os.write(w, json.dumps(parts).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0 and data, "unprivileged probe child failed"
    kind, *rest = json.loads(data)
    return kind, tuple(rest)


@pytest.fixture
def shared_xeon():
    """The recorded tree in a folder every user can traverse (pytest's tmp_path is 0700)."""
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="tf-powercap-"))
    top.chmod(0o755)
    root = top / "powercap"
    shutil.copytree(POWERCAP / "xeon-2s", root)
    for p in [root, *root.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    yield root
    shutil.rmtree(top)


def test_rapl_permission_denied(shared_xeon: Path) -> None:
    for zone in shared_xeon.glob("intel-rapl:*"):
        (zone / "energy_uj").chmod(0o400)  # root-only, as on Linux >= 5.10
    kind, (reason,) = probe_unprivileged(shared_xeon)
    assert kind == "NA"
    assert "permission denied" in reason and "intel-rapl:0/energy_uj" in reason
    assert "run as root or" in reason and "chmod" in reason


def test_rapl_one_zone_denied_is_skipped_with_a_note(shared_xeon: Path) -> None:
    (shared_xeon / "intel-rapl:1:1" / "energy_uj").chmod(0)
    kind, notes = probe_unprivileged(shared_xeon)
    assert kind == "OK"
    assert any("permission denied" in n and "intel-rapl:1:1" in n for n in notes)


def test_rapl_unreadable_tree(shared_xeon: Path) -> None:
    shared_xeon.chmod(0o700)  # the powercap folder itself is closed
    kind, (reason,) = probe_unprivileged(shared_xeon)
    assert kind == "NA" and "not readable" in reason


def test_rapl_unreadable_counter_is_skipped_with_a_reason(xeon: Path) -> None:
    # Works as root too: a counter that cannot be read as a number (here a directory).
    bad = xeon / "intel-rapl:1" / "energy_uj"
    bad.unlink()
    bad.mkdir()
    m = RaplMeter(xeon)
    assert "package-1" not in m.domains
    m.start()
    notes = m.stop().notes
    assert any("intel-rapl:1" in n and "skipped" in n for n in notes)
    for zone in xeon.glob("intel-rapl:*"):
        if (zone / "energy_uj").is_file():
            (zone / "energy_uj").unlink()
    got = RaplMeter.probe(xeon)
    assert isinstance(got, PowerUnavailable) and "no usable RAPL" in got.reason


def test_detect_power_meter_on_this_machine() -> None:
    got = detect_power_meter("cpu")
    if isinstance(got, PowerUnavailable):
        assert "RAPL" in got.reason
        assert json.loads(json.dumps(got.to_dict()))["reason"] == got.reason
    else:  # a host that exposes RAPL: the meter must actually work
        got.start()
        time.sleep(0.05)
        r = got.stop()
        assert r.energy_j >= 0 and r.duration_s > 0 and r.source.startswith("rapl:")


def test_detect_power_meter_routes_devices(xeon: Path, tmp_path: Path) -> None:
    assert isinstance(detect_power_meter("cpu", powercap_root=xeon), RaplMeter)
    unknown = detect_power_meter("npu")
    assert isinstance(unknown, PowerUnavailable) and "'npu'" in unknown.reason
    both = detect_power_meter("auto", powercap_root=tmp_path / "none", nvml=NvmlReplay.broken())
    assert isinstance(both, PowerUnavailable)
    assert "RAPL" in both.reason and "NVML" in both.reason and " and " in both.reason
    gpu = detect_power_meter("auto", powercap_root=xeon, nvml=NvmlReplay(NVML / "h100_total_energy.json"))
    assert isinstance(gpu, NvmlMeter)


# ----------------------------------------------------------------------------- NVML replay


class NvmlReplay:
    """Recorded replay of the few pynvml functions NvmlMeter calls.

    ``nvmlDeviceGetTotalEnergyConsumption`` returns the recorded counter reads in order,
    or raises NotSupported when the GPU had none. Each ``nvmlDeviceGetPowerUsage`` call
    advances one row of the recorded power trace (staying on the last row once done);
    :meth:`clock` returns the time of the current row, so the integral is exact
    whatever the sampler thread's real timing is.
    """

    class NVMLError(Exception):
        pass

    def __init__(self, path: Path | None, *, init_error: str | None = None) -> None:
        data = json.loads(path.read_text()) if path else {"devices": []}
        self.devices = data["devices"]
        self.init_error = init_error
        dev = self.devices[0] if self.devices else {}
        self._energy = list(dev.get("total_energy_mj") or [])
        self._energy_clock = list(dev.get("total_energy_clock_s") or [])
        self._trace = dev.get("power_trace", [])
        self._pos = -1
        self.power_reads = 0
        self.open_inits = 0  # nvmlInit calls not yet matched by nvmlShutdown

    @classmethod
    def broken(cls) -> NvmlReplay:
        return cls(None, init_error="Driver Not Loaded")

    # --- the pynvml surface
    def nvmlInit(self) -> None:
        if self.init_error:
            raise self.NVMLError(self.init_error)
        self.open_inits += 1

    def nvmlShutdown(self) -> None:
        self.open_inits -= 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if not 0 <= index < len(self.devices):
            raise self.NVMLError("Invalid Argument")
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return self.devices[handle]["name"].encode()  # older pynvml returns bytes

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        if not self._energy:
            raise self.NVMLError("Not Supported")
        return self._energy.pop(0) if len(self._energy) > 1 else self._energy[0]

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        self._pos = min(self._pos + 1, len(self._trace) - 1)
        self.power_reads += 1
        return int(self._trace[self._pos][1])

    # --- the recorded clock
    def clock(self) -> float:
        if self._energy_clock:
            return self._energy_clock.pop(0)
        return float(self._trace[self._pos][0])

    @property
    def exhausted(self) -> bool:
        return self._pos >= len(self._trace) - 1


def test_nvml_total_energy_path() -> None:
    fake = NvmlReplay(NVML / "h100_total_energy.json")
    meter = NvmlMeter(0, fake, clock=fake.clock)
    assert meter.method == "total_energy"
    assert isinstance(meter, PowerMeter)
    meter.start()
    r = meter.stop()
    assert r.source == "nvml:GPU0 NVIDIA H100 80GB HBM3"
    assert r.energy_j == pytest.approx(700.5)
    assert r.duration_s == pytest.approx(2.0)
    assert r.avg_power_w == pytest.approx(350.25)
    assert r.domains == {"gpu0": pytest.approx(700.5)}
    assert fake.power_reads == 0  # the counter path never samples


def test_nvml_power_sampling_path() -> None:
    fake = NvmlReplay(NVML / "p100_power_samples.json")
    meter = NvmlMeter(0, fake, clock=fake.clock, interval_s=0.001)
    assert meter.method == "power_sampling"
    meter.start()
    deadline = time.monotonic() + 5.0
    while not fake.exhausted and time.monotonic() < deadline:
        time.sleep(0.005)
    r = meter.stop()
    assert fake.exhausted
    assert r.energy_j == pytest.approx(206.75, abs=1e-9)  # 3 + 7.25 + 184 + 8 + 4.5
    assert r.duration_s == pytest.approx(1.0)
    assert r.avg_power_w == pytest.approx(206.75, abs=1e-9)
    assert r.source == "nvml:GPU0 Tesla P100-PCIE-16GB"
    assert any("power samples" in n for n in r.notes)


def test_nvml_sampling_thread_really_samples_at_interval() -> None:
    # Real wall clock: the thread keeps sampling on its own, one read per 10 ms wait. Wait for the
    # reads (the 10 s limit only guards against a hang), so a busy machine makes it slower, not fail.
    fake = NvmlReplay(NVML / "p100_power_samples.json")
    meter = NvmlMeter(0, fake, interval_s=0.01)
    meter.start()
    deadline = time.monotonic() + 10.0
    while fake.power_reads < 5 and time.monotonic() < deadline:
        time.sleep(0.005)
    r = meter.stop()
    assert fake.power_reads >= 5
    assert r.duration_s >= 0.035 and r.energy_j > 0    # 4 full 10 ms waits between the 5 reads (less clock skew)


def test_nvml_probe_failures() -> None:
    broken = NvmlMeter.probe(0, nvml=NvmlReplay.broken())
    assert isinstance(broken, PowerUnavailable) and "Driver Not Loaded" in broken.reason
    h100 = NvmlReplay(NVML / "h100_total_energy.json")
    out_of_range = NvmlMeter.probe(3, nvml=h100)
    assert isinstance(out_of_range, PowerUnavailable) and "cuda:0..cuda:0" in out_of_range.reason
    assert h100.open_inits == 0  # a failed open releases NVML
    meter = NvmlMeter(0, h100)
    assert h100.open_inits == 1
    meter.close()
    assert h100.open_inits == 0
    fake = NvmlReplay(NVML / "p100_power_samples.json")
    with pytest.raises(RuntimeError, match="before start"):
        NvmlMeter(0, fake).stop()


def test_nvml_probe_without_pynvml_installed() -> None:
    try:
        import pynvml  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pynvml is installed here")
    got = NvmlMeter.probe(0)
    assert isinstance(got, PowerUnavailable)
    assert "nvidia-ml-py not installed" in got.reason
    cuda = detect_power_meter("cuda:0")
    assert isinstance(cuda, PowerUnavailable) and "nvidia-ml-py" in cuda.reason


def test_reading_and_unavailable_are_json() -> None:
    r = PowerReading("rapl:package-0", 1.5, 0.5, 3.0, {"package-0": 1.5})
    assert json.loads(json.dumps(r.to_dict())) == {
        "source": "rapl:package-0", "energy_j": 1.5, "duration_s": 0.5, "avg_power_w": 3.0,
        "domains": {"package-0": 1.5}, "notes": [],
    }
    assert PowerUnavailable("x").to_dict() == {"available": False, "reason": "x"}
