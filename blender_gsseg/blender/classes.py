"""Registering the add-on's classes, the one way: operators' docstrings wrap in the source, while a tooltip is
one line, so the description is the docstring's words on one line."""

import bpy


def register_classes(classes):
    for cls in classes:
        if cls.__doc__ and "bl_description" not in cls.__dict__:
            cls.bl_description = " ".join(cls.__doc__.split())
        bpy.utils.register_class(cls)


def unregister_classes(classes):
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
