"""Planning and running the install of CuPy (the CUDA backend) for the Blender add-on; never imports ``bpy``.

What it plans: which CuPy wheel fits this machine, from the CUDA version the NVIDIA driver supports
(``cuDriverGetVersion`` through ctypes, else the ``CUDA Version`` printed by ``nvidia-smi``) and from Blender's
NumPy (CuPy 14 needs NumPy 2; Blender 4.2-5.0 ship NumPy 1.26, for which CuPy 13 is the newest; a driver newer
than the wheel's CUDA runs it), and the pip commands that install it into a target folder in two steps so that
NumPy is never installed there (it would shadow Blender's own): first CuPy without its dependencies, then the
dependencies listed in its metadata except NumPy. It also puts that folder on ``sys.path`` and says in one line
what the driver and CuPy look like.

Why it lives outside the Blender layer (``blender/``): none of this needs Blender, so it is tested with plain
Python (tests/test_cupy_install.py). ``blender/prefs.py`` keeps only what needs ``bpy``: the target folder
(``bpy.utils.extension_path_user``), the online-access check (``bpy.app.online_access``), the preferences UI and
its operators, which pass the folder in as an argument.
"""

import ctypes
import glob
import importlib
import importlib.util
import os
import re
import subprocess
import sys

SITE_FOLDER = "site-packages"
PIP_TIMEOUT = 1800
NUMPY = "numpy"


# ---------------------------------------------------------------------------------------------------------------
# The install folder on sys.path

def add_to_sys_path(folder):
    """Put ``folder`` on sys.path when it exists (after Blender's own folders, so Blender's NumPy stays first)."""
    if folder and os.path.isdir(folder) and folder not in sys.path:
        sys.path.append(folder)
        importlib.invalidate_caches()
    return folder


def remove_from_sys_path(folder):
    if folder in sys.path:
        sys.path.remove(folder)


# ---------------------------------------------------------------------------------------------------------------
# What the machine has

def parse_nvidia_smi(text):
    """(major, minor) from nvidia-smi's header ('CUDA Version: 12.4'), or None."""
    match = re.search(r"CUDA Version\s*:\s*(\d+)\.(\d+)", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def _driver_library_version():
    names = {"win32": ["nvcuda.dll"], "darwin": []}.get(sys.platform, ["libcuda.so.1", "libcuda.so"])
    for name in names:
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        version = ctypes.c_int(0)
        try:
            if library.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value > 0:
                return version.value // 1000, (version.value % 1000) // 10
        except AttributeError:
            continue
    return None


def detect_cuda():
    """(major, minor, how) of the CUDA version the installed NVIDIA driver supports, or None."""
    version = _driver_library_version()
    if version is not None:
        return version + ("driver",)
    try:
        result = subprocess.run(["nvidia-smi"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    version = parse_nvidia_smi(result.stdout)
    return version + ("nvidia-smi",) if version is not None else None


def numpy_major():
    import numpy

    return int(numpy.__version__.split(".")[0])


# ---------------------------------------------------------------------------------------------------------------
# Which wheel

CHOICES = (
    ("AUTO", "Detect", "Choose the CuPy wheel from the CUDA version of the NVIDIA driver"),
    ("cupy-cuda12x", "CUDA 12", "cupy-cuda12x (drivers for CUDA 12 or newer)"),
    ("cupy-cuda13x", "CUDA 13", "cupy-cuda13x (drivers for CUDA 13; needs NumPy 2, Blender 5.1+)"),
    ("cupy-cuda11x", "CUDA 11", "cupy-cuda11x (drivers for CUDA 11.2 or newer)"),
)


def cupy_requirement(cuda, numpy_version_major, choice="AUTO"):
    """The pip requirement of the CuPy wheel for a driver supporting CUDA ``cuda`` = (major, minor), or for
    the explicit ``choice`` (a package name); raises ValueError when there is none."""
    numpy2 = numpy_version_major >= 2
    if choice != "AUTO":
        package = choice
    elif cuda is None:
        raise ValueError("no NVIDIA driver found (neither the CUDA driver library nor nvidia-smi); choose the "
                         "CUDA version by hand if there is one")
    elif cuda[0] >= 13:
        package = "cupy-cuda13x" if numpy2 else "cupy-cuda12x"  # a CUDA 13 driver runs CUDA 12 builds
    elif cuda[0] == 12:
        package = "cupy-cuda12x"
    elif cuda >= (11, 2):
        package = "cupy-cuda11x"
    else:
        raise ValueError(f"the driver supports CUDA {cuda[0]}.{cuda[1]}; CuPy needs CUDA 11.2 or newer "
                         f"(update the NVIDIA driver)")
    if package == "cupy-cuda13x" and not numpy2:
        raise ValueError("cupy-cuda13x needs NumPy 2 (CuPy 14); this Blender has NumPy 1 -- choose CUDA 12")
    if package == "cupy-cuda11x":
        if numpy2:
            raise ValueError("no CuPy release supports CUDA 11 with NumPy 2; update the NVIDIA driver")
        return "cupy-cuda11x>=13,<14"
    return f"{package}[ctk]>=14,<15" if numpy2 else f"{package}>=13,<14"


def plan_requirement(choice="AUTO"):
    """The CuPy requirement for this machine: the driver is looked for only when ``choice`` is 'AUTO'; raises
    ValueError when there is none."""
    cuda = detect_cuda() if choice == "AUTO" else None
    return cupy_requirement(cuda, numpy_major(), choice)


# ---------------------------------------------------------------------------------------------------------------
# The pip commands

def pip_command(python, target, requirements, no_deps=False):
    command = [python, "-m", "pip", "install", "--upgrade", "--disable-pip-version-check",
               "--no-input", "--target", target]
    if no_deps:
        command.append("--no-deps")
    return command + list(requirements)


def install_first_step(python, target, requirement):
    """The pip command that installs the CuPy wheel alone."""
    return pip_command(python, target, [requirement], no_deps=True)


def _requirement_name(text):
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", text)
    return match.group(1).lower().replace("_", "-") if match else ""


def dependencies_from_metadata(target, package, extras=()):
    """The requirements (strings) of ``package``'s dist-info METADATA in ``target``, markers evaluated for this
    Python with ``extras``; NumPy is left out (Blender has its own)."""
    stem = package.split("[")[0].replace("-", "_").lower()
    found = [path for path in glob.glob(os.path.join(target, "*.dist-info"))
             if os.path.basename(path).lower().startswith(stem + "-")]
    if not found:
        raise FileNotFoundError(f"no {package} metadata in {target}")
    with open(os.path.join(sorted(found)[-1], "METADATA"), encoding="utf-8") as handle:
        lines = [line.split(":", 1)[1].strip() for line in handle if line.startswith("Requires-Dist:")]
    try:
        from pip._vendor.packaging.requirements import Requirement
    except ImportError:  # no pip here: keep the unconditional requirements
        Requirement = None
    result = []
    for line in lines:
        if Requirement is not None:
            requirement = Requirement(line)
            if requirement.marker is not None and not any(
                    requirement.marker.evaluate({"extra": extra}) for extra in (tuple(extras) or ("",))):
                continue
            text = str(requirement).split(";")[0].strip()
        else:
            if ";" in line:
                continue
            text = line
        if _requirement_name(text) != NUMPY:
            result.append(text)
    return result


def second_step_dependencies(target, requirement):
    """CuPy's own dependencies (NumPy left out) for ``requirement``, read from what the first step installed."""
    extras = [e.strip() for group in re.findall(r"\[([^\]]*)\]", requirement) for e in group.split(",")
              if e.strip()]
    return dependencies_from_metadata(target, _requirement_name(requirement), extras)


def install_second_step(python, target, requirement):
    """The pip command for CuPy's own dependencies (NumPy left out), or None when there are none."""
    dependencies = second_step_dependencies(target, requirement)
    return pip_command(python, target, dependencies) if dependencies else None


def pip_available():
    return importlib.util.find_spec("pip") is not None


def ensurepip_command(python):
    return [python, "-m", "ensurepip", "--upgrade", "--user"]


def run_install(requirement, target, state, python=None):
    """Install ``requirement`` into ``target``: ensurepip if needed, CuPy alone, then its dependencies. Blocks (the
    add-on runs it in a worker thread); ``state`` gets the status text ("status") and the outcome ("ok")."""
    python = python or sys.executable
    try:
        steps = []
        if not pip_available():
            steps.append(("setting up pip", ensurepip_command(python)))
        steps.append((f"downloading {requirement}", install_first_step(python, target, requirement)))
        for index, (what, command) in enumerate(steps):
            state["status"] = f"Installing: {what} ..."
            result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    timeout=PIP_TIMEOUT)
            if result.returncode != 0:
                raise RuntimeError(f"{what} failed: {result.stdout.strip().splitlines()[-1:]}")
        dependencies = second_step_dependencies(target, requirement)
        if dependencies:
            state["status"] = f"Installing: CuPy's dependencies ({', '.join(dependencies)}) ..."
            result = subprocess.run(pip_command(python, target, dependencies), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, timeout=PIP_TIMEOUT)
            if result.returncode != 0:
                raise RuntimeError(f"installing CuPy's dependencies failed: "
                                   f"{result.stdout.strip().splitlines()[-1:]}")
        state["status"] = f"Installed {requirement} into {target}"
        state["ok"] = True
    except Exception as error:
        state["status"] = f"Install failed: {error}"
        state["ok"] = False


# ---------------------------------------------------------------------------------------------------------------
# Status lines

def cupy_status():
    """One line on CuPy as this Python sees it now."""
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed: the CPU backend is used"
    except Exception as error:  # a broken install
        return f"CuPy does not load: {error}"
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode() if count else ""
    except Exception as error:
        return f"CuPy {cupy.__version__} is installed but finds no GPU ({error})"
    return f"CuPy {cupy.__version__}: {count} GPU{'s' if count != 1 else ''} ({name})"


def describe_driver(cuda):
    """What :func:`detect_cuda` found (``cuda``: its result), in words."""
    return f"NVIDIA driver for CUDA {cuda[0]}.{cuda[1]} ({cuda[2]})" if cuda else "no NVIDIA driver found"


def check_status():
    """One line on the NVIDIA driver and CuPy (what *Check* reports)."""
    return f"{describe_driver(detect_cuda())}; {cupy_status()}"
