"""The CuPy install planner (blender_gsseg/cupy_install.py) without Blender: which wheel for which driver and
NumPy, what nvidia-smi and the driver library say, the pip commands, the install steps, the status lines.
The Blender side (preferences UI, operators, install folder) is tested in test_blender_scene.py."""

import ctypes
import importlib.util
import os
import subprocess
import sys
import types

import pytest

_BPY_BEFORE = "bpy" in sys.modules  # another test module of the session may have imported it already

from blender_gsseg import cupy_install  # noqa: E402
from blender_gsseg.cupy_install import (CHOICES, cupy_requirement, detect_cuda, parse_nvidia_smi,  # noqa: E402
                                        pip_command)

PIP = ["/bl/python", "-m", "pip", "install", "--upgrade", "--disable-pip-version-check", "--no-input", "--target"]


def test_importing_the_planner_does_not_import_bpy():
    if not _BPY_BEFORE:
        assert "bpy" not in sys.modules
    probe = subprocess.run([sys.executable, "-c", "import sys, blender_gsseg.cupy_install; "
                            "print('bpy' in sys.modules)"], capture_output=True, text=True,
                           cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------------------------
# Which wheel

@pytest.mark.parametrize("cuda, numpy_major, expected", [
    ((11, 2), 1, "cupy-cuda11x>=13,<14"),
    ((11, 8), 1, "cupy-cuda11x>=13,<14"),
    ((12, 0), 1, "cupy-cuda12x>=13,<14"),
    ((12, 4), 1, "cupy-cuda12x>=13,<14"),
    ((12, 8), 2, "cupy-cuda12x[ctk]>=14,<15"),
    ((13, 0), 1, "cupy-cuda12x>=13,<14"),  # NumPy 1 (Blender 4.2-5.0): CuPy 13, whose CUDA 12 build runs there
    ((13, 0), 2, "cupy-cuda13x[ctk]>=14,<15"),
    ((13, 2), 2, "cupy-cuda13x[ctk]>=14,<15"),
    ((14, 1), 2, "cupy-cuda13x[ctk]>=14,<15"),  # a newer driver runs the newest wheel
])
def test_requirement_from_the_driver(cuda, numpy_major, expected):
    assert cupy_requirement(cuda, numpy_major) == expected
    assert cupy_requirement(cuda, numpy_major, "AUTO") == expected


@pytest.mark.parametrize("choice, numpy_major, expected", [
    ("cupy-cuda12x", 1, "cupy-cuda12x>=13,<14"),
    ("cupy-cuda12x", 2, "cupy-cuda12x[ctk]>=14,<15"),
    ("cupy-cuda13x", 2, "cupy-cuda13x[ctk]>=14,<15"),
    ("cupy-cuda11x", 1, "cupy-cuda11x>=13,<14"),
])
def test_requirement_chosen_by_hand_ignores_the_driver(choice, numpy_major, expected):
    assert cupy_requirement(None, numpy_major, choice) == expected
    assert cupy_requirement((11, 0), numpy_major, choice) == expected  # a driver too old for AUTO: not looked at


@pytest.mark.parametrize("cuda, numpy_major, choice, phrase", [
    (None, 1, "AUTO", "no NVIDIA driver found"),
    (None, 2, "AUTO", "no NVIDIA driver found"),
    ((10, 2), 1, "AUTO", "CUDA 10.2; CuPy needs CUDA 11.2"),
    ((11, 1), 1, "AUTO", "CUDA 11.1; CuPy needs CUDA 11.2"),
    ((11, 8), 2, "AUTO", "no CuPy release supports CUDA 11 with NumPy 2"),
    (None, 1, "cupy-cuda13x", "cupy-cuda13x needs NumPy 2"),
    ((13, 0), 1, "cupy-cuda13x", "cupy-cuda13x needs NumPy 2"),
    (None, 2, "cupy-cuda11x", "no CuPy release supports CUDA 11 with NumPy 2"),
])
def test_requirement_refused(cuda, numpy_major, choice, phrase):
    with pytest.raises(ValueError, match=phrase):
        cupy_requirement(cuda, numpy_major, choice)


def test_choices_are_detect_and_the_wheels_the_planner_accepts():
    identifiers = [item[0] for item in CHOICES]
    assert identifiers == ["AUTO", "cupy-cuda12x", "cupy-cuda13x", "cupy-cuda11x"]
    assert all(len(item) == 3 and all(isinstance(part, str) and part for part in item) for item in CHOICES)
    for package in identifiers[1:]:  # every wheel choice gives a requirement on that very package
        numpy_major = 1 if package == "cupy-cuda11x" else 2
        assert cupy_requirement(None, numpy_major, package).startswith(package)


def test_plan_requirement_looks_for_the_driver_only_when_detecting(monkeypatch):
    calls = []

    def fake_detect():
        calls.append(1)
        return (12, 6, "nvidia-smi")

    monkeypatch.setattr(cupy_install, "detect_cuda", fake_detect)
    monkeypatch.setattr(cupy_install, "numpy_major", lambda: 1)
    assert cupy_install.plan_requirement() == "cupy-cuda12x>=13,<14"
    assert calls == [1]
    assert cupy_install.plan_requirement("cupy-cuda11x") == "cupy-cuda11x>=13,<14"
    assert calls == [1]
    monkeypatch.setattr(cupy_install, "numpy_major", lambda: 2)
    assert cupy_install.plan_requirement("AUTO") == "cupy-cuda12x[ctk]>=14,<15"
    monkeypatch.setattr(cupy_install, "detect_cuda", lambda: None)
    with pytest.raises(ValueError, match="no NVIDIA driver"):
        cupy_install.plan_requirement()


def test_numpy_major_is_this_pythons():
    import numpy

    assert cupy_install.numpy_major() == int(numpy.__version__.split(".")[0])


# ---------------------------------------------------------------------------------------------------------------
# nvidia-smi and the driver library

SMI_550 = """\
Tue Nov 26 10:12:01 2024
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |
|-----------------------------------------+------------------------+----------------------+
| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |
| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |
|                                         |                        |               MIG M. |
|=========================================+========================+======================|
|   0  NVIDIA GeForce RTX 3090        Off |   00000000:01:00.0  On |                  N/A |
|  0%   45C    P8             21W /  350W |     512MiB /  24576MiB |      3%      Default |
|                                         |                        |                  N/A |
+-----------------------------------------+------------------------+----------------------+
"""

SMI_580 = """\
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 580.159.04             Driver Version: 580.159.04     CUDA Version: 13.0     |
+-----------------------------------------+------------------------+----------------------+
|   0  NVIDIA H200                    On  |   00000000:19:00.0 Off |                    0 |
| N/A   29C    P0             76W /  700W |       1MiB / 143771MiB |      0%      Default |
+-----------------------------------------+------------------------+----------------------+
"""

SMI_470 = """\
+-----------------------------------------------------------------------------+
| NVIDIA-SMI 470.182.03   Driver Version: 470.182.03   CUDA Version: 11.4     |
|-------------------------------+----------------------+----------------------+
| GPU  Name        Persistence-M| Bus-Id        Disp.A | Volatile Uncorr. ECC |
|   0  Tesla T4            Off  | 00000000:00:04.0 Off |                    0 |
+-------------------------------+----------------------+----------------------+
"""

SMI_WINDOWS = ("+---------------------------------------------------------------------------------------+\r\n"
               "| NVIDIA-SMI 546.33                 Driver Version: 546.33       CUDA Version: 12.3     |\r\n")

SMI_NO_DRIVER = ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the "
                 "latest NVIDIA driver is installed and running.\n")


@pytest.mark.parametrize("text, expected", [
    (SMI_550, (12, 4)),
    (SMI_580, (13, 0)),
    (SMI_470, (11, 4)),
    (SMI_WINDOWS, (12, 3)),
    ("CUDA Version:12.10", (12, 10)),
    (SMI_NO_DRIVER, None),
    ("No devices were found\n", None),
    ("bash: nvidia-smi: command not found\n", None),
    ("| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: N/A |", None),
    ("\x00\xff garbage 12.4 Driver Version: 550.54.15", None),
    ("", None),
    (None, None),
])
def test_parse_nvidia_smi(text, expected):
    assert parse_nvidia_smi(text) == expected


class FakeDriver:
    """A stand-in for libcuda: cuDriverGetVersion writes ``version`` and returns ``code``."""

    def __init__(self, version, code=0):
        self.version, self.code = version, code

    def cuDriverGetVersion(self, pointer):
        ctypes.cast(pointer, ctypes.POINTER(ctypes.c_int)).contents.value = self.version
        return self.code


def _fake_cdll(monkeypatch, libraries):
    """ctypes.CDLL opens only ``libraries`` ({name: object}); returns the names asked for, in order."""
    asked = []

    def cdll(name):
        asked.append(name)
        if name not in libraries:
            raise OSError(f"{name}: cannot open shared object file")
        return libraries[name]

    monkeypatch.setattr(cupy_install.ctypes, "CDLL", cdll)
    return asked


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="the Linux library names")
def test_driver_library_version(monkeypatch):
    asked = _fake_cdll(monkeypatch, {"libcuda.so.1": FakeDriver(12040)})
    assert cupy_install._driver_library_version() == (12, 4)
    assert asked == ["libcuda.so.1"]
    asked = _fake_cdll(monkeypatch, {"libcuda.so": FakeDriver(13020)})  # only the unversioned name
    assert cupy_install._driver_library_version() == (13, 2)
    assert asked == ["libcuda.so.1", "libcuda.so"]
    asked = _fake_cdll(monkeypatch, {"libcuda.so.1": FakeDriver(11080, code=3)})  # CUDA_ERROR_NOT_INITIALIZED
    assert cupy_install._driver_library_version() is None
    asked = _fake_cdll(monkeypatch, {"libcuda.so.1": FakeDriver(0)})
    assert cupy_install._driver_library_version() is None
    asked = _fake_cdll(monkeypatch, {"libcuda.so.1": object(), "libcuda.so": FakeDriver(12080)})  # no symbol
    assert cupy_install._driver_library_version() == (12, 8)
    asked = _fake_cdll(monkeypatch, {})
    assert cupy_install._driver_library_version() is None
    assert asked == ["libcuda.so.1", "libcuda.so"]


@pytest.mark.parametrize("platform, names", [("win32", ["nvcuda.dll"]), ("darwin", []),
                                             ("linux", ["libcuda.so.1", "libcuda.so"])])
def test_driver_library_names(monkeypatch, platform, names):
    asked = _fake_cdll(monkeypatch, {})
    real = sys.platform
    sys.platform = platform
    try:
        assert cupy_install._driver_library_version() is None
    finally:
        sys.platform = real
    assert asked == names


def test_detect_cuda_prefers_the_driver_library(monkeypatch):
    ran = []
    monkeypatch.setattr(cupy_install, "_driver_library_version", lambda: (12, 4))
    monkeypatch.setattr(cupy_install.subprocess, "run", lambda *a, **k: ran.append(a) or None)
    assert detect_cuda() == (12, 4, "driver")
    assert ran == []  # nvidia-smi is not run


def test_detect_cuda_falls_back_to_nvidia_smi(monkeypatch):
    monkeypatch.setattr(cupy_install, "_driver_library_version", lambda: None)
    ran = []

    def run(command, **kwargs):
        ran.append(command)
        return subprocess.CompletedProcess(command, 0, stdout=SMI_580)

    monkeypatch.setattr(cupy_install.subprocess, "run", run)
    assert detect_cuda() == (13, 0, "nvidia-smi")
    assert ran == [["nvidia-smi"]]
    monkeypatch.setattr(cupy_install.subprocess, "run",
                        lambda command, **kwargs: subprocess.CompletedProcess(command, 9, stdout=SMI_NO_DRIVER))
    assert detect_cuda() is None


@pytest.mark.parametrize("error", [FileNotFoundError(2, "No such file or directory: 'nvidia-smi'"),
                                   PermissionError(13, "Permission denied"),
                                   subprocess.TimeoutExpired(["nvidia-smi"], 20)])
def test_detect_cuda_without_nvidia_smi(monkeypatch, error):
    monkeypatch.setattr(cupy_install, "_driver_library_version", lambda: None)

    def run(command, **kwargs):
        raise error

    monkeypatch.setattr(cupy_install.subprocess, "run", run)
    assert detect_cuda() is None


def test_detect_cuda_on_this_machine():
    found = detect_cuda()  # whatever this machine has; must not raise
    assert found is None or (isinstance(found[0], int) and isinstance(found[1], int)
                             and found[2] in ("driver", "nvidia-smi"))


# ---------------------------------------------------------------------------------------------------------------
# The pip commands

def _cupy_metadata(target, name="cupy_cuda12x", version="13.6.0", requires=None):
    dist = target / f"{name}-{version}.dist-info"
    dist.mkdir(parents=True)
    requires = requires if requires is not None else [
        "numpy<2.6,>=1.22", "fastrlock>=0.5", 'cuda-toolkit[cublas,nvrtc]==12.*; extra == "ctk"',
        'scipy>=1.10; extra == "all"']
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {line}\n" for line in requires) + "\nCuPy\n", encoding="utf-8")
    return dist


def test_pip_command():
    assert pip_command("/bl/python", "/t", ["a>=1", "b"]) == PIP + ["/t", "a>=1", "b"]
    assert pip_command("/bl/python", "/t", ("a",), no_deps=True) == PIP + ["/t", "--no-deps", "a"]
    assert pip_command("/bl/python", "/t", []) == PIP + ["/t"]


def test_first_step_installs_cupy_alone():
    assert cupy_install.install_first_step("/bl/python", "/user/site-packages", "cupy-cuda12x>=13,<14") == \
        PIP + ["/user/site-packages", "--no-deps", "cupy-cuda12x>=13,<14"]


def test_second_step_installs_the_dependencies_but_never_numpy(tmp_path):
    _cupy_metadata(tmp_path)
    base = PIP + [str(tmp_path)]
    assert cupy_install.install_second_step("/bl/python", str(tmp_path), "cupy-cuda12x>=13,<14") == \
        base + ["fastrlock>=0.5"]
    assert cupy_install.install_second_step("/bl/python", str(tmp_path), "cupy-cuda12x[ctk]>=13") == \
        base + ["fastrlock>=0.5", "cuda-toolkit[cublas,nvrtc]==12.*"]
    assert cupy_install.second_step_dependencies(str(tmp_path), "cupy-cuda12x[ctk, all]>=14,<15") == \
        ["fastrlock>=0.5", "cuda-toolkit[cublas,nvrtc]==12.*", "scipy>=1.10"]


def test_second_step_is_none_when_numpy_is_the_only_dependency(tmp_path):
    _cupy_metadata(tmp_path, requires=["NumPy>=1.22", 'fastrlock>=0.5; extra == "never"'])
    assert cupy_install.install_second_step("/bl/python", str(tmp_path), "cupy-cuda12x>=13,<14") is None


def test_dependencies_read_from_the_newest_matching_metadata(tmp_path):
    _cupy_metadata(tmp_path, version="13.5.0", requires=["old-dependency"])
    _cupy_metadata(tmp_path, version="13.6.0", requires=["fastrlock>=0.5"])
    _cupy_metadata(tmp_path, name="cupy_cuda12x_extra", version="1.0", requires=["wrong-package"])
    _cupy_metadata(tmp_path, name="cupy_cuda13x", version="14.0.0", requires=["other-cuda"])
    assert cupy_install.dependencies_from_metadata(str(tmp_path), "cupy-cuda12x") == ["fastrlock>=0.5"]
    assert cupy_install.dependencies_from_metadata(str(tmp_path), "cupy-cuda13x[ctk]") == ["other-cuda"]


def test_dependencies_without_metadata(tmp_path):
    with pytest.raises(FileNotFoundError, match="no cupy-cuda12x metadata"):
        cupy_install.second_step_dependencies(str(tmp_path), "cupy-cuda12x>=13,<14")


def test_dependencies_without_pip_keep_the_unconditional_ones(tmp_path, monkeypatch):
    _cupy_metadata(tmp_path)
    monkeypatch.setitem(sys.modules, "pip._vendor.packaging.requirements", None)  # import fails
    assert cupy_install.dependencies_from_metadata(str(tmp_path), "cupy-cuda12x", ["ctk"]) == ["fastrlock>=0.5"]


def test_ensurepip_command():
    assert cupy_install.ensurepip_command("/bl/python") == ["/bl/python", "-m", "ensurepip", "--upgrade", "--user"]
    assert cupy_install.pip_available() == (importlib.util.find_spec("pip") is not None)


# ---------------------------------------------------------------------------------------------------------------
# Running the install (pip stubbed)

class FakePip:
    """subprocess.run for pip: records the commands; ``fail`` = the index of the command that fails."""

    def __init__(self, fail=None):
        self.commands, self.fail = [], fail

    def __call__(self, command, **kwargs):
        self.commands.append(command)
        failed = len(self.commands) - 1 == self.fail
        output = "Collecting ...\nERROR: No matching distribution found for cupy\n" if failed else "Successfully\n"
        return subprocess.CompletedProcess(command, 1 if failed else 0, stdout=output)


def test_run_install_two_steps(tmp_path, monkeypatch):
    _cupy_metadata(tmp_path)  # what the first step would have installed
    pip = FakePip()
    monkeypatch.setattr(cupy_install.subprocess, "run", pip)
    monkeypatch.setattr(cupy_install, "pip_available", lambda: True)
    state = {}
    cupy_install.run_install("cupy-cuda12x[ctk]>=14,<15", str(tmp_path), state, python="/bl/python")
    assert pip.commands == [PIP + [str(tmp_path), "--no-deps", "cupy-cuda12x[ctk]>=14,<15"],
                            PIP + [str(tmp_path), "fastrlock>=0.5", "cuda-toolkit[cublas,nvrtc]==12.*"]]
    assert state == {"status": f"Installed cupy-cuda12x[ctk]>=14,<15 into {tmp_path}", "ok": True}


def test_run_install_sets_up_pip_first_and_uses_this_python(tmp_path, monkeypatch):
    _cupy_metadata(tmp_path, requires=["numpy>=1.22"])  # nothing left for a second step
    pip = FakePip()
    monkeypatch.setattr(cupy_install.subprocess, "run", pip)
    monkeypatch.setattr(cupy_install, "pip_available", lambda: False)
    state = {}
    cupy_install.run_install("cupy-cuda12x>=13,<14", str(tmp_path), state)
    assert pip.commands == [[sys.executable, "-m", "ensurepip", "--upgrade", "--user"],
                            [sys.executable] + PIP[1:] + [str(tmp_path), "--no-deps", "cupy-cuda12x>=13,<14"]]
    assert state["ok"] is True


def test_run_install_reports_a_failed_step(tmp_path, monkeypatch):
    pip = FakePip(fail=0)
    monkeypatch.setattr(cupy_install.subprocess, "run", pip)
    monkeypatch.setattr(cupy_install, "pip_available", lambda: True)
    state = {}
    cupy_install.run_install("cupy-cuda12x>=13,<14", str(tmp_path), state, python="/bl/python")
    assert len(pip.commands) == 1  # nothing after the failure
    assert state == {"ok": False, "status": "Install failed: downloading cupy-cuda12x>=13,<14 failed: "
                                            "['ERROR: No matching distribution found for cupy']"}


def test_run_install_reports_failed_dependencies(tmp_path, monkeypatch):
    _cupy_metadata(tmp_path)
    monkeypatch.setattr(cupy_install.subprocess, "run", FakePip(fail=1))
    monkeypatch.setattr(cupy_install, "pip_available", lambda: True)
    state = {}
    cupy_install.run_install("cupy-cuda12x>=13,<14", str(tmp_path), state, python="/bl/python")
    assert state["ok"] is False
    assert state["status"].startswith("Install failed: installing CuPy's dependencies failed: ")


def test_run_install_without_metadata_after_the_first_step(tmp_path, monkeypatch):
    monkeypatch.setattr(cupy_install.subprocess, "run", FakePip())
    monkeypatch.setattr(cupy_install, "pip_available", lambda: True)
    state = {}
    cupy_install.run_install("cupy-cuda13x[ctk]>=14,<15", str(tmp_path), state, python="/bl/python")
    assert state == {"ok": False, "status": f"Install failed: no cupy-cuda13x metadata in {tmp_path}"}


# ---------------------------------------------------------------------------------------------------------------
# sys.path and the status lines

def test_install_folder_on_sys_path(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    folder = str(tmp_path / "site-packages")
    assert cupy_install.add_to_sys_path(folder) == folder
    assert folder not in sys.path  # not there yet
    os.mkdir(folder)
    first = sys.path[0]
    assert cupy_install.add_to_sys_path(folder) == folder
    assert sys.path[-1] == folder and sys.path[0] == first  # last: Blender's own NumPy stays first
    cupy_install.add_to_sys_path(folder)
    assert sys.path.count(folder) == 1
    cupy_install.remove_from_sys_path(folder)
    assert folder not in sys.path
    cupy_install.remove_from_sys_path(folder)  # twice is harmless
    assert cupy_install.add_to_sys_path(None) is None


def _fake_cupy(count=None, error=None, name=b"NVIDIA H200"):
    def device_count():
        if error is not None:
            raise error
        return count

    runtime = types.SimpleNamespace(getDeviceCount=device_count, getDeviceProperties=lambda i: {"name": name})
    return types.SimpleNamespace(__version__="14.2.0", cuda=types.SimpleNamespace(runtime=runtime))


def test_cupy_status(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert cupy_install.cupy_status() == "CuPy is not installed: the CPU backend is used"
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count=1))
    assert cupy_install.cupy_status() == "CuPy 14.2.0: 1 GPU (NVIDIA H200)"
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count=2))
    assert cupy_install.cupy_status() == "CuPy 14.2.0: 2 GPUs (NVIDIA H200)"
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(error=RuntimeError("cudaErrorNoDevice")))
    assert cupy_install.cupy_status() == "CuPy 14.2.0 is installed but finds no GPU (cudaErrorNoDevice)"


def test_cupy_status_of_a_broken_install(monkeypatch, tmp_path):
    (tmp_path / "cupy").mkdir()
    (tmp_path / "cupy" / "__init__.py").write_text("raise RuntimeError('CUDA driver library mismatch')\n")
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cupy_install.cupy_status() == "CuPy does not load: CUDA driver library mismatch"
    monkeypatch.delitem(sys.modules, "cupy", raising=False)


def test_check_status(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.setattr(cupy_install, "detect_cuda", lambda: (12, 4, "driver"))
    assert cupy_install.check_status() == ("NVIDIA driver for CUDA 12.4 (driver); "
                                           "CuPy is not installed: the CPU backend is used")
    monkeypatch.setattr(cupy_install, "detect_cuda", lambda: None)
    assert cupy_install.check_status().startswith("no NVIDIA driver found; ")
    assert cupy_install.describe_driver((13, 0, "nvidia-smi")) == "NVIDIA driver for CUDA 13.0 (nvidia-smi)"
