"""Registering the add-on's classes and application handlers, the one way. Operators' docstrings wrap in the
source, while a tooltip is one line, so the description is the docstring's words on one line. Handlers are kept
across file loads (``persistent``) and removed exactly as added."""

import bpy


def register_classes(classes):
    for cls in classes:
        if cls.__doc__ and "bl_description" not in cls.__dict__:
            cls.bl_description = " ".join(cls.__doc__.split())
        bpy.utils.register_class(cls)


def unregister_classes(classes):
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)


def register_handlers(handlers):
    """Append ``handlers`` [(bpy.app.handlers list name, function)]; returns what to give
    :func:`unregister_handlers`."""
    from bpy.app.handlers import persistent

    added = [(kind, persistent(function)) for kind, function in handlers]
    for kind, handler in added:
        getattr(bpy.app.handlers, kind).append(handler)
    return added


def unregister_handlers(added):
    for kind, handler in added:
        if handler in getattr(bpy.app.handlers, kind):
            getattr(bpy.app.handlers, kind).remove(handler)
