"""gsseg: lift 2D object masks onto a 3D Gaussian Splatting scene, optimally.

Importing this package never imports ``bpy``: the Blender layer is imported by :func:`register` only.
"""

__version__ = "0.1.0"


def register():
    from .blender import register as register_blender

    register_blender()


def unregister():
    from .blender import unregister as unregister_blender

    unregister_blender()
