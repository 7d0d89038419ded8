"""Add-on preferences: the default backend, and installing CuPy (the CUDA backend) into the extension's user
folder.

The CuPy wheel is chosen from the CUDA version the NVIDIA driver supports (``cuDriverGetVersion`` through
ctypes, else the ``CUDA Version`` printed by ``nvidia-smi``) and from Blender's NumPy (CuPy 14 needs NumPy 2;
Blender 4.2-5.0 ship NumPy 1.26, for which CuPy 13 is the newest; a driver newer than the wheel's CUDA runs it).
pip runs in a subprocess with ``--target`` the folder ``extension_path_user(<add-on>, "site-packages")``,
in two steps so that NumPy is never installed there (it would shadow Blender's own): first CuPy without its
dependencies, then the dependencies listed in its metadata except NumPy. The folder is put on ``sys.path``
when the add-on is enabled. Nothing is downloaded unless Blender allows online access
(``bpy.app.online_access``, Preferences > System > Network); the extension declares the ``network``
permission for this.
"""

import ctypes
import glob
import importlib
import importlib.util
import os
import re
import subprocess
import sys
import threading

import bpy
from bpy.props import EnumProperty, StringProperty

ADDON_PACKAGE = __package__.rpartition(".")[0]  # the add-on root: blender_gsseg or bl_ext.<repo>.gsseg
SITE_FOLDER = "site-packages"
PIP_TIMEOUT = 1800
NUMPY = "numpy"


# ---------------------------------------------------------------------------------------------------------------
# Where and what to install

def site_packages(create=False):
    """The folder CuPy is installed into: the extension's user folder (kept across extension updates), or, for
    the add-on run from a pip install, gsseg/site-packages in Blender's user scripts folder."""
    try:
        return bpy.utils.extension_path_user(ADDON_PACKAGE, path=SITE_FOLDER, create=create)
    except ValueError:  # not an extension
        return bpy.utils.user_resource("SCRIPTS", path=os.path.join("gsseg", SITE_FOLDER), create=create)


def add_site_packages():
    """Put the install folder on sys.path (after Blender's own folders, so Blender's NumPy stays first)."""
    folder = site_packages()
    if folder and os.path.isdir(folder) and folder not in sys.path:
        sys.path.append(folder)
        importlib.invalidate_caches()
    return folder


def remove_site_packages():
    folder = site_packages()
    if folder in sys.path:
        sys.path.remove(folder)


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


def cupy_status():
    """One line on CuPy as this Blender sees it now."""
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


# ---------------------------------------------------------------------------------------------------------------
# Preferences

def preferences(context=None):
    """The add-on preferences, or None when the add-on runs outside Blender's add-on system."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_PACKAGE)
    return addon.preferences if addon is not None else None


def resolve_backend(context, name):
    """A scene backend setting ('DEFAULT' means the preferences' default) as a core backend name."""
    if name != "DEFAULT":
        return name
    prefs = preferences(context)
    return prefs.default_backend if prefs is not None else "auto"


class GSSEG_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    default_backend: EnumProperty(name="Default Backend", items=(
        ("auto", "Auto", "CUDA when CuPy finds a GPU, else CPU"),
        ("cpu", "CPU", "Vectorised CPU rasterisation (numba when installed)"),
        ("cuda", "CUDA", "CuPy kernels (needs an NVIDIA GPU and CuPy)"),
    ), default="auto", description="Backend of the accumulation when the scene setting is 'Default'")
    cuda_choice: EnumProperty(name="CUDA", items=CHOICES, default="AUTO",
                              description="Which CuPy wheel to install")
    cuda_status: StringProperty(name="Status", default="",
                                description="What the last check or install found")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "default_backend")
        box = layout.box()
        box.label(text="CUDA acceleration (CuPy)", icon="PREFERENCES")
        row = box.row()
        row.prop(self, "cuda_choice")
        row.operator("gsseg.check_cuda", text="Check", icon="VIEWZOOM")
        row = box.row()
        row.enabled = bool(bpy.app.online_access)
        row.operator("gsseg.install_cuda", text="Install CUDA Acceleration", icon="IMPORT")
        if not bpy.app.online_access:
            box.label(text="Online access is off: allow it in Preferences > System > Network to install",
                      icon="ERROR")
        box.label(text=self.cuda_status or "Press Check to see what is installed", icon="INFO")
        box.label(text=f"Folder: {site_packages()}")


def _set_status(context, text):
    prefs = preferences(context)
    if prefs is not None:
        prefs.cuda_status = text
    print("gsseg:", text)


class GSSEG_OT_check_cuda(bpy.types.Operator):
    """Look for an NVIDIA driver and CuPy, and say what was found"""

    bl_idname = "gsseg.check_cuda"
    bl_label = "Check CUDA"
    bl_options = {"REGISTER"}

    def execute(self, context):
        add_site_packages()
        cuda = detect_cuda()
        driver = (f"NVIDIA driver for CUDA {cuda[0]}.{cuda[1]} ({cuda[2]})" if cuda else "no NVIDIA driver found")
        text = f"{driver}; {cupy_status()}"
        _set_status(context, text)
        self.report({"INFO"}, text)
        return {"FINISHED"}


class GSSEG_OT_install_cuda(bpy.types.Operator):
    """Download and install the CuPy wheel matching this machine's CUDA driver into the extension's user folder
    (needs online access)"""

    bl_idname = "gsseg.install_cuda"
    bl_label = "Install CUDA Acceleration"
    bl_options = {"REGISTER", "INTERNAL"}

    _thread = None
    _timer = None
    _state = None

    @classmethod
    def poll(cls, context):
        if not bpy.app.online_access:
            cls.poll_message_set("Online access is disabled (Preferences > System > Network)")
            return False
        return True

    def _plan(self, context):
        prefs = preferences(context)
        choice = prefs.cuda_choice if prefs is not None else "AUTO"
        cuda = detect_cuda() if choice == "AUTO" else None
        return cupy_requirement(cuda, numpy_major(), choice), site_packages(create=True)

    def _run(self, requirement, target, state):
        """Worker: ensurepip if needed, CuPy alone, then its dependencies; ``state`` gets the status text."""
        python = sys.executable
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

    def _finish(self, context, state):
        if state.get("ok"):
            add_site_packages()
            state["status"] += "; " + cupy_status()
        _set_status(context, state["status"])
        self.report({"INFO" if state.get("ok") else "ERROR"}, state["status"])
        return {"FINISHED"} if state.get("ok") else {"CANCELLED"}

    def _plan_or_report(self, context):
        """(requirement, target), or None after saying why nothing can be installed."""
        try:
            return self._plan(context)
        except ValueError as error:
            _set_status(context, f"Not installed: {error}")
            self.report({"ERROR"}, str(error))
            return None

    def execute(self, context):
        plan = self._plan_or_report(context)
        if plan is None:
            return {"CANCELLED"}
        requirement, target = plan
        state = {}
        self._run(requirement, target, state)
        return self._finish(context, state)

    def invoke(self, context, event):
        plan = self._plan_or_report(context)
        if plan is None:
            return {"CANCELLED"}
        requirement, target = plan
        self._state = {"status": f"Installing {requirement} ..."}
        _set_status(context, self._state["status"])
        self._thread = threading.Thread(target=self._run, args=(requirement, target, self._state), daemon=True)
        self._thread.start()
        self._timer = context.window_manager.event_timer_add(0.5, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        _set_status(context, self._state["status"])
        for area in context.screen.areas if context.screen else ():
            area.tag_redraw()
        if self._thread.is_alive():
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        return self._finish(context, self._state)


CLASSES = (GSSEG_AP_preferences, GSSEG_OT_check_cuda, GSSEG_OT_install_cuda)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    add_site_packages()


def unregister():
    remove_site_packages()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
