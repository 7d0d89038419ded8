"""The Blender layer of gsseg: operators, panels, properties and import/export glue (the only place that
imports ``bpy``). It calls the core and holds no maths of its own.

Only relative imports are used, so the same code runs as the ``blender_gsseg`` package (pip) and as the
extension module ``bl_ext.<repository>.gsseg``.
"""

from . import ops, panels, prefs, props, segment, splat_display

_MODULES = (props, prefs, ops, panels, splat_display, segment)


def register():
    for module in _MODULES:
        module.register()


def unregister():
    for module in reversed(_MODULES):
        module.unregister()
