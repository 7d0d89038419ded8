"""gsseg: lift 2D object masks onto a 3D Gaussian Splatting scene, optimally.

Importing this package never imports ``bpy``: the Blender layer is imported by :func:`register` only.
"""

import sys

__version__ = "0.1.0"

# The Blender releases gsseg is tested on, [first, past the last): blender_manifest.toml says the same
# (blender_version_min / blender_version_max) and tests/blender_releases.txt lists the releases tested.
TESTED_BLENDER = ((4, 2, 0), (5, 4, 0))


def blender_support(version):
    """(enable, message) for Blender ``version`` (a tuple such as ``bpy.app.version``): releases before the
    tested range are refused (the Blender layer uses APIs they lack), newer ones are enabled with a warning."""
    low, high = TESTED_BLENDER
    tested = f"Blender {low[0]}.{low[1]} to {high[0]}.{high[1] - 1}"
    this = "Blender " + ".".join(str(part) for part in version)
    if tuple(version) < low:
        return False, (f"gsseg needs {tested} and this is {this}: gsseg is not enabled "
                       f"(install gsseg for Blender {low[0]}.{low[1]} or newer)")
    if tuple(version) >= high:
        return True, f"gsseg is tested on {tested} and this is {this}: it is enabled, but please report any problem"
    return True, None


def register():
    import bpy

    enable, message = blender_support(bpy.app.version)
    if message:
        print(message, file=sys.stderr)
    if enable:
        from .blender import register as register_blender

        register_blender()


def unregister():
    import bpy

    if blender_support(bpy.app.version)[0]:
        from .blender import unregister as unregister_blender

        unregister_blender()
