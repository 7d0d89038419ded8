"""Add-on preferences: the default backend, and installing CuPy (the CUDA backend) into the extension's user
folder -- the Blender side only.

Which CuPy wheel, the pip commands (two steps, never NumPy) and running them are planned without Blender in
``blender_gsseg/cupy_install.py``; this module adds what needs ``bpy``: the install folder
``extension_path_user(<add-on>, "site-packages")`` (put on ``sys.path`` when the add-on is enabled), the
preferences UI, and the *Check* and *Install CUDA Acceleration* operators (pip runs in a worker thread). Nothing
is downloaded unless Blender allows online access (``bpy.app.online_access``, Preferences > System > Network);
the extension declares the ``network`` permission for this.
"""

import os
import threading

import bpy
from bpy.props import EnumProperty, StringProperty

from ..cupy_install import (CHOICES, SITE_FOLDER, add_to_sys_path, check_status, cupy_status, plan_requirement,
                            remove_from_sys_path, run_install)
from .classes import register_classes, unregister_classes

ADDON_PACKAGE = __package__.rpartition(".")[0]  # the add-on root: blender_gsseg or bl_ext.<repo>.gsseg


# ---------------------------------------------------------------------------------------------------------------
# Where to install

def site_packages(create=False):
    """The folder CuPy is installed into: the extension's user folder (kept across extension updates), or, for
    the add-on run from a pip install, gsseg/site-packages in Blender's user scripts folder."""
    try:
        return bpy.utils.extension_path_user(ADDON_PACKAGE, path=SITE_FOLDER, create=create)
    except ValueError:  # not an extension
        return bpy.utils.user_resource("SCRIPTS", path=os.path.join("gsseg", SITE_FOLDER), create=create)


def add_site_packages():
    """Put the install folder on sys.path (after Blender's own folders, so Blender's NumPy stays first)."""
    return add_to_sys_path(site_packages())


def remove_site_packages():
    remove_from_sys_path(site_packages())


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
        ("cpu", "CPU", "The compiled walk (numba, bundled), else the numpy path"),
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
        text = check_status()
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
        return plan_requirement(choice), site_packages(create=True)

    def _run(self, requirement, target, state):
        """Worker: ensurepip if needed, CuPy alone, then its dependencies; ``state`` gets the status text."""
        run_install(requirement, target, state)

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
    register_classes(CLASSES)
    add_site_packages()


def unregister():
    remove_site_packages()
    unregister_classes(CLASSES)
