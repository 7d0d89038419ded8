"""The Blender extension: packaging, install into headless bpy, import/export, cameras, segmentation.

Every bpy test runs in its own Python process (see blender_harness.py) with a temporary HOME.
"""

import importlib.util
import os
import tomllib

import numpy as np
import pytest

from blender_harness import BLENDER_RELEASES, DEFAULT_BLENDER, REPO, blender_user_dir, run_bpy

import blender_gsseg
from blender_gsseg.core.cameras import Camera, write_cameras_json, write_transforms_json, write_colmap_text
from blender_gsseg.core.gaussians import write_gaussians

if importlib.util.find_spec("bpy") is None:  # never import bpy here: each test runs it in a child process
    pytest.skip("bpy (Blender as a Python module) is not installed", allow_module_level=True)

SH3_REST = 45


# ---------------------------------------------------------------------------------------------------------------
# Test data

def handmade_ply(path, n=300, seed=1):
    """A binary PLY written by hand (not by our writer): SH degree 3, extra int/uchar/uint/short/char
    properties in odd places, comments and obj_info, and two other elements around the vertex element."""
    rng = np.random.default_rng(seed)
    fields = [("x", "<f4", "float"), ("y", "<f4", "float"), ("z", "<f4", "float"),
              ("nx", "<f4", "float"), ("flags", "u1", "uchar"), ("ny", "<f4", "float"), ("nz", "<f4", "float"),
              ("f_dc_0", "<f4", "float"), ("f_dc_1", "<f4", "float"), ("f_dc_2", "<f4", "float")]
    fields += [(f"f_rest_{i}", "<f4", "float") for i in range(SH3_REST)]
    fields += [("opacity", "<f4", "float"), ("scale_0", "<f4", "float"), ("scale_1", "<f4", "float"),
               ("scale_2", "<f4", "float"), ("rot_0", "<f4", "float"), ("rot_1", "<f4", "float"),
               ("rot_2", "<f4", "float"), ("rot_3", "<f4", "float"),
               ("semantic_id", "<i4", "int"), ("tag", "<u4", "uint"), ("level", "<u2", "ushort"),
               ("weird", "i1", "char")]
    vertex = np.zeros(n, dtype=[(name, code) for name, code, _ in fields])
    for name, code, _ in fields:
        if code == "<f4":
            vertex[name] = rng.normal(size=n).astype(np.float32)
    vertex["scale_0"] -= 4
    vertex["scale_1"] -= 4
    vertex["scale_2"] -= 4
    vertex["f_rest_3"][:4] = np.array([-0.0, 1e-40, -3e38, 7.006492e-45], dtype=np.float32)  # -0, denormals, big
    vertex["flags"] = rng.integers(0, 256, n)
    vertex["semantic_id"] = rng.integers(-(2 ** 31), 2 ** 31 - 1, n)
    vertex["tag"] = rng.integers(0, 2 ** 32, n, dtype=np.uint64).astype(np.uint32)
    vertex["tag"][0] = 0xFFFFFFFF
    vertex["level"] = rng.integers(0, 65536, n)
    vertex["weird"] = rng.integers(-128, 128, n)
    info = np.array([(1.5, 7), (-2.25, 255)], dtype=[("a", "<f4"), ("b", "u1")])
    extra = np.array([3, -4, 5], dtype=[("k", "<i4")])
    header = ["ply", "format binary_little_endian 1.0", "comment made by hand", "obj_info scanner v2",
              "comment second comment", "element info 2", "property float a", "property uchar b",
              f"element vertex {n}"]
    header += [f"property {ply} {name}" for name, _, ply in fields]
    header += ["element extra 3", "property int k", "end_header"]
    with open(path, "wb") as handle:
        handle.write(("\n".join(header) + "\n").encode("ascii"))
        handle.write(info.tobytes() + vertex.tobytes() + extra.tobytes())
    return vertex


def ascii_ply(path, n=5):
    """A small ASCII PLY (read through plyfile by the core)."""
    lines = ["ply", "format ascii 1.0", f"element vertex {n}"]
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
             "rot_0", "rot_1", "rot_2", "rot_3"]
    lines += [f"property float {name}" for name in names]
    lines.append("end_header")
    for i in range(n):
        lines.append(" ".join(["%d" % i, "0", "0", "0.1", "0.2", "0.3", "1", "-3", "-3", "-3", "1", "0", "0", "0"]))
    with open(path, "w", encoding="ascii") as handle:
        handle.write("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------------------------
# Packaging

def test_manifest_is_valid_and_matches_package():
    with open(os.path.join(REPO, "blender_manifest.toml"), "rb") as handle:
        manifest = tomllib.load(handle)
    assert manifest["schema_version"] == "1.0.0"
    assert manifest["id"] == "gsseg"
    assert manifest["version"] == blender_gsseg.__version__
    assert manifest["type"] == "add-on"
    assert manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert manifest["blender_version_min"] == "4.2.0"
    tagline = manifest["tagline"]
    assert len(tagline) <= 64 and tagline[-1].isalnum()
    assert set(manifest["permissions"]) <= {"files", "network"}
    wheels = [os.path.basename(w) for w in manifest["wheels"]]
    assert "plyfile-1.1.3-py3-none-any.whl" in wheels
    platforms = {
        "linux-x64": lambda w: "manylinux" in w and w.endswith("x86_64.whl"),
        "windows-x64": lambda w: w.endswith("win_amd64.whl"),
        "macos-arm64": lambda w: "macosx" in w and w.endswith("arm64.whl"),
        "macos-x64": lambda w: "macosx" in w and w.endswith("x86_64.whl"),
    }
    assert manifest["platforms"] == list(platforms)
    for tag in ("cp311", "cp313"):  # Blender 4.2-5.0 and 5.1+
        for platform, matches in platforms.items():
            assert any(w.startswith("pillow-") and f"-{tag}-" in w and matches(w) for w in wheels), (tag, platform)
    assert not any(w.startswith("numpy") for w in wheels), "Blender bundles numpy"


# Before bpy is imported: make plyfile and PIL importable only from Blender's extension site-packages, as in a
# Blender that does not ship them (this environment has both installed).
BUNDLED_ONLY = """
import importlib.abc, importlib.machinery
BUNDLED = ("plyfile", "PIL")

class OnlyBundled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name not in BUNDLED:
            return None
        marker = os.sep + os.path.join("extensions", ".local") + os.sep
        spec = importlib.machinery.PathFinder.find_spec(name, [p for p in sys.path if marker in p])
        if spec is None:
            raise ModuleNotFoundError(f"No module named {name!r} (outside the extension's wheels)", name=name)
        return spec

assert not any(m in sys.modules for m in BUNDLED)
sys.meta_path.insert(0, OnlyBundled())
"""


def test_extension_installs_enables_and_uses_bundled_wheels(extension_zip, tmp_path):
    ascii_ply(tmp_path / "tiny.ply")
    result = run_bpy("""
        import bpy
        try:
            import plyfile
            raise AssertionError("plyfile importable before the extension is installed")
        except ModuleNotFoundError:
            pass
        outcome = bpy.ops.extensions.package_install_files(filepath=ARGS["zip"], repo="user_default",
                                                            enable_on_install=True)
        assert outcome == {"FINISHED"}, outcome
        assert "bl_ext.user_default.gsseg" in bpy.context.preferences.addons.keys()
        assert hasattr(bpy.ops.gsseg, "import_splat") and hasattr(bpy.types, "GSSEG_PT_main")
        assert hasattr(bpy.types, "GSSEG_FH_splat")  # drag and drop of .ply/.splat/.spz into the 3D View
        import bl_ext.user_default.gsseg as ext
        assert ext.blender.io_splat.__name__ == "bl_ext.user_default.gsseg.blender.io_splat"
        # The ASCII PLY goes through plyfile: the import proves the bundled wheel works.
        assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"]) == {"FINISHED"}
        obj = bpy.context.active_object
        RESULT["count"] = len(obj.data.vertices)
        import plyfile, PIL
        RESULT["plyfile"] = plyfile.__file__
        RESULT["PIL"] = PIL.__file__
        RESULT["extension_dir"] = os.path.dirname(ext.__file__)
        # preferences: the default backend, and CuPy's install folder in the extension's user folder
        prefs = bpy.context.preferences.addons["bl_ext.user_default.gsseg"].preferences
        assert prefs.default_backend == "auto"
        prefs.default_backend = "cpu"
        assert ext.blender.prefs.resolve_backend(bpy.context, "DEFAULT") == "cpu"
        site = ext.blender.prefs.site_packages(create=True)
        RESULT["site"] = site
        assert ext.blender.prefs.add_site_packages() == site and site in sys.path
        bpy.ops.preferences.addon_disable(module="bl_ext.user_default.gsseg")
        assert site not in sys.path
        assert not hasattr(bpy.types, "GSSEG_PT_main")
    """, home=tmp_path / "home", args={"zip": extension_zip, "ply": str(tmp_path / "tiny.ply")},
        register="none", preamble=BUNDLED_ONLY)
    user = blender_user_dir(tmp_path / "home")
    local = os.path.join(user, "extensions", ".local", "lib", f"python{BLENDER_RELEASES[DEFAULT_BLENDER]}",
                         "site-packages")
    assert result["plyfile"].startswith(local), result["plyfile"]
    assert result["PIL"].startswith(local), result["PIL"]
    assert result["extension_dir"].endswith(os.path.join("extensions", "user_default", "gsseg"))
    assert result["site"] == os.path.join(user, "extensions", ".user", "user_default", "gsseg", "site-packages")
    assert result["count"] == 5


def test_extension_zip_layout(extension_zip):
    import glob
    import zipfile

    with zipfile.ZipFile(extension_zip) as archive:
        names = set(archive.namelist())
        manifest = tomllib.loads(archive.read("blender_manifest.toml").decode("utf-8"))
    assert {"__init__.py", "blender/__init__.py", "core/gaussians.py", "blender_manifest.toml"} <= names
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    for source in glob.glob(os.path.join(REPO, "cuda", "*.cu")):  # the CUDA backend looks in <package>/cuda
        assert "cuda/" + os.path.basename(source) in names
    assert manifest["version"] == blender_gsseg.__version__
    wheels = [w[len("./"):] for w in manifest["wheels"]]
    assert set(wheels) == {name for name in names if name.startswith("wheels/")}
    assert any(w.startswith("wheels/plyfile-1.1.3-") for w in wheels)
    assert any(w.startswith("wheels/pillow-") and "-cp311-" in w for w in wheels)


# ---------------------------------------------------------------------------------------------------------------
# Import / export

def test_import_export_round_trip_is_bit_exact(tmp_path):
    source = tmp_path / "scene.ply"
    vertex = handmade_ply(source)
    (tmp_path / "scene.gsseg.npz").write_bytes(b"")  # a sidecar beside the file is remembered
    result = run_bpy("""
        import bpy, numpy as np
        from blender_gsseg.blender import io_splat
        from blender_gsseg.core.gaussians import read_gaussians
        import time
        start = time.perf_counter()
        assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"]) == {"FINISHED"}
        RESULT["import_s"] = time.perf_counter() - start
        obj = bpy.context.active_object
        mesh = obj.data
        source = read_gaussians(ARGS["ply"])
        n = len(source)
        assert len(mesh.vertices) == n and len(mesh.edges) == 0 and len(mesh.polygons) == 0
        # every property is an attribute of its own name, values exact
        for name in source.vertex.dtype.names:
            if name in "xyz":
                continue
            attribute = mesh.attributes[name]
            assert attribute.domain == "POINT"
            column = source.vertex[name]
            if column.dtype.kind == "f":
                assert attribute.data_type == "FLOAT", name
                values = np.empty(n, np.float32)
                attribute.data.foreach_get("value", values)
                assert values.tobytes() == column.astype("<f4").tobytes(), name
            else:
                assert attribute.data_type == "INT", name
                values = np.empty(n, np.int32)
                attribute.data.foreach_get("value", values)
                expected = column.view(np.int32) if column.dtype == np.uint32 else column.astype(np.int32)
                assert (values == expected).all(), name
        positions = np.empty(3 * n, np.float32)
        mesh.attributes["position"].data.foreach_get("vector", positions)
        assert (positions.reshape(n, 3) == source.means).all()
        # colour for display and render
        assert mesh.color_attributes.active_color_name == "Col"
        assert mesh.color_attributes[mesh.color_attributes.render_color_index].name == "Col"
        colors = np.empty(4 * n, np.float32)
        mesh.color_attributes["Col"].data.foreach_get("color", colors)
        assert np.allclose(colors.reshape(n, 4)[:, :3], io_splat.srgb_to_linear(source.base_colors), atol=1e-6)
        assert np.allclose(colors.reshape(n, 4)[:, 3], source.opacities, atol=1e-6)
        assert "gsseg_radius" in mesh.attributes
        # header kept on the object
        header = io_splat.header_of(obj)
        assert [p[0] for p in header["properties"]] == list(source.vertex.dtype.names)
        assert dict((p[0], p[1]) for p in header["properties"])["tag"] == "uint"
        assert header["meta_lines"] == [["comment", "made by hand"], ["obj_info", "scanner v2"],
                                        ["comment", "second comment"]]
        assert obj["gsseg_elements"]
        assert obj["gsseg_sidecar"] == ARGS["sidecar"] and obj.gsseg.accumulation_path == ARGS["sidecar"]
        # point display: Geometry Nodes Mesh to Points + material reading Col
        modifier = obj.modifiers["gsseg Points"]
        assert modifier.type == "NODES"
        idnames = {node.bl_idname for node in modifier.node_group.nodes}
        assert {"GeometryNodeMeshToPoints", "GeometryNodeSetMaterial"} <= idnames
        material = mesh.materials[0]
        assert any(n.bl_idname == "ShaderNodeAttribute" and n.attribute_name == "Col"
                   for n in material.node_tree.nodes)
        depsgraph = bpy.context.evaluated_depsgraph_get()
        clouds = [inst.object.data for inst in depsgraph.object_instances
                  if inst.object.type == "POINTCLOUD"]
        assert clouds and len(clouds[0].points) == n, [inst.object.type for inst in depsgraph.object_instances]
        assert "Col" in clouds[0].attributes and clouds[0].materials[0].original == material

        # export: byte for byte
        start = time.perf_counter()
        assert bpy.ops.gsseg.export_splat(filepath=ARGS["out"]) == {"FINISHED"}
        RESULT["export_s"] = time.perf_counter() - start

        # selected only (edit-mode selection attribute) and the label
        selection = np.zeros(n, bool)
        selection[::3] = True
        attribute = mesh.attributes.get(".select_vert") or mesh.attributes.new(".select_vert", "BOOLEAN", "POINT")
        attribute.data.foreach_set("value", selection)
        labels = mesh.attributes.new("gsseg_label", "INT", "POINT")
        labels.data.foreach_set("value", np.arange(n, dtype=np.int32) % 7)
        assert bpy.ops.gsseg.export_splat(filepath=ARGS["out_selected"], selected_only=True,
                                          include_label=True) == {"FINISHED"}
        subset = read_gaussians(ARGS["out_selected"])
        assert len(subset) == selection.sum()
        assert subset.vertex.dtype.names == source.vertex.dtype.names + ("gsseg_label",)
        assert subset.property_types["gsseg_label"] == "int"
        assert (subset.vertex["gsseg_label"] == (np.arange(n) % 7)[selection]).all()
        for name in source.vertex.dtype.names:
            assert subset.vertex[name].tobytes() == source.vertex[name][selection].tobytes(), name
        assert [e.name for e in subset.elements] == ["info", "extra"]

        # a transform a Gaussian cannot represent is refused with a clear error, and nothing is written
        obj.scale = (1.0, 2.0, 1.0)
        try:
            bpy.ops.gsseg.export_splat(filepath=ARGS["out_moved"])
            raise AssertionError("export with a non-uniform scale did not fail")
        except RuntimeError as error:
            RESULT["transform_error"] = str(error)
        assert not os.path.exists(ARGS["out_moved"])
        obj.scale = (-1.0, -1.0, -1.0)
        try:
            bpy.ops.gsseg.export_splat(filepath=ARGS["out_moved"])
            raise AssertionError("export with a negative scale did not fail")
        except RuntimeError as error:
            RESULT["mirror_error"] = str(error)
        assert not os.path.exists(ARGS["out_moved"])
    """, home=tmp_path / "home", args={
        "ply": str(source), "out": str(tmp_path / "out.ply"), "out_selected": str(tmp_path / "selected.ply"),
        "out_moved": str(tmp_path / "moved.ply"), "sidecar": str(tmp_path / "scene.gsseg.npz")})
    assert (tmp_path / "out.ply").read_bytes() == source.read_bytes()
    assert "non-uniform scale" in result["transform_error"], result["transform_error"]
    assert "mirror" in result["mirror_error"], result["mirror_error"]
    print(f"import {result['import_s']:.3f} s, export {result['export_s']:.3f} s for {len(vertex)} splats")


def test_float64_properties_are_rounded_and_said(tmp_path):
    n = 4
    fields = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
              "rot_0", "rot_1", "rot_2", "rot_3"]
    vertex = np.zeros(n, dtype=[(f, "<f4") for f in fields] + [("precise", "<f8")])
    vertex["rot_0"] = 1
    vertex["precise"] = [0.1, 1 / 3, 2.0, -1e-300]
    from blender_gsseg.core.gaussians import Gaussians
    write_gaussians(tmp_path / "double.ply", Gaussians(vertex))
    result = run_bpy("""
        import bpy, numpy as np
        from blender_gsseg.blender import io_splat
        from blender_gsseg.core.gaussians import read_gaussians
        imported = io_splat.import_splat(bpy.context, ARGS["ply"])
        RESULT["rounded"] = imported.rounded
        RESULT["summary"] = imported.summary()
        bpy.context.view_layer.objects.active = imported.object
        assert bpy.ops.gsseg.export_splat(filepath=ARGS["out"]) == {"FINISHED"}
        back = read_gaussians(ARGS["out"])
        assert back.property_types["precise"] == "double"
        RESULT["precise"] = back.vertex["precise"].tolist()
    """, home=tmp_path / "home", args={"ply": str(tmp_path / "double.ply"), "out": str(tmp_path / "out.ply")})
    assert result["rounded"] == ["precise"]
    assert "float64 rounded to float32: precise" in result["summary"]
    assert result["precise"] == vertex["precise"].astype(np.float32).astype(np.float64).tolist()


def test_compressed_formats_import(tmp_path):
    folder = os.path.join(REPO, "tests", "data", "formats")
    inputs = sorted(f for f in os.listdir(folder) if f.endswith((".splat", ".spz", ".compressed.ply")))
    if not inputs:
        pytest.skip("no compressed-format fixtures")
    result = run_bpy("""
        import bpy, numpy as np
        from blender_gsseg.blender import io_splat
        from blender_gsseg.core.gaussians import read_gaussians
        RESULT["names"] = []
        # several files in one call, as a drop or a multi-selection in the file browser gives them
        assert bpy.ops.gsseg.import_splat(directory=ARGS["folder"],
                                          files=[{"name": name} for name in ARGS["inputs"]]) == {"FINISHED"}
        objects = sorted(bpy.context.selected_objects, key=lambda o: o.name)
        assert len(objects) == len(ARGS["inputs"])
        for name in ARGS["inputs"]:
            path = os.path.join(ARGS["folder"], name)
            obj = next(o for o in objects if io_splat.header_of(o)["source"] == path)
            source = read_gaussians(path)
            assert len(obj.data.vertices) == len(source), name
            values = np.empty(len(source), np.float32)
            obj.data.attributes["opacity"].data.foreach_get("value", values)
            assert values.tobytes() == source.vertex["opacity"].astype(np.float32).tobytes(), name
            RESULT["names"].append(obj.name)
    """, home=tmp_path / "home", args={"folder": folder, "inputs": inputs})
    assert len(result["names"]) == len(inputs)
    assert not any(name.endswith((".compressed", ".splat", ".spz")) for name in result["names"]), result["names"]


def test_points_render_in_cycles(tmp_path):
    """The Geometry Nodes points and the Col material show in a Cycles render, in the splat's own colour."""
    from blender_gsseg.core.gaussians import Gaussians
    from blender_gsseg.core.cameras import look_at

    rng = np.random.default_rng(0)
    n = 400
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
             "rot_0", "rot_1", "rot_2", "rot_3"]
    vertex = np.zeros(n, dtype=[(name, "<f4") for name in names])
    direction = rng.normal(size=(n, 3))
    points = 0.5 * direction / np.linalg.norm(direction, axis=1, keepdims=True)
    for axis, name in enumerate("xyz"):
        vertex[name] = points[:, axis]
    colour = np.array([0.8, 0.3, 0.1])
    for c in range(3):
        vertex[f"f_dc_{c}"] = (colour[c] - 0.5) / 0.28209479177387814
        vertex[f"scale_{c}"] = np.log(0.08)
    vertex["opacity"] = 5.0
    vertex["rot_0"] = 1.0
    write_gaussians(tmp_path / "ball.ply", Gaussians(vertex))
    camera = Camera(look_at((0.0, -3.0, 0.0), (0.0, 0.0, 0.0)), 60.0, 60.0, 24.0, 24.0, 48, 48, "front.png")
    write_cameras_json(tmp_path / "cameras.json", [camera])
    result = run_bpy("""
        import bpy, numpy as np
        from PIL import Image
        scene = bpy.context.scene
        for obj in list(scene.objects):
            bpy.data.objects.remove(obj)
        assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"]) == {"FINISHED"}
        assert bpy.ops.gsseg.import_cameras(filepath=ARGS["cameras"]) == {"FINISHED"}
        camera = scene.gsseg.camera_collection.objects[0]
        bpy.context.view_layer.objects.active = camera
        assert bpy.ops.gsseg.use_camera() == {"FINISHED"}
        scene.render.engine = "CYCLES"
        scene.cycles.samples = 4
        scene.cycles.device = "CPU"
        scene.render.film_transparent = True
        scene.render.dither_intensity = 0.0
        scene.view_settings.view_transform = "Standard"
        scene.render.filepath = ARGS["out"]
        bpy.ops.render.render(write_still=True)
        image = np.asarray(Image.open(ARGS["out"]).convert("RGBA")).astype(np.float64) / 255
        covered = image[..., 3] > 0.99
        RESULT["coverage"] = float(covered.mean())
        RESULT["centre"] = image[24, 24].tolist()
    """, home=tmp_path / "home", args={"ply": str(tmp_path / "ball.ply"), "cameras": str(tmp_path / "cameras.json"),
                                       "out": str(tmp_path / "render.png")})
    assert 0.05 < result["coverage"] < 0.9, result
    assert np.allclose(result["centre"][:3], colour, atol=3 / 255), result["centre"]


# ---------------------------------------------------------------------------------------------------------------
# Cameras

def _test_cameras():
    from blender_gsseg.core.cameras import look_at

    cameras = []
    for k, (eye, size, fx, fy, cx, cy) in enumerate([
        ((4.0, -3.0, 2.0), (640, 480), 500.0, 500.0, 310.5, 250.25),
        ((-2.0, 5.0, 1.0), (480, 640), 620.0, 610.0, 250.0, 300.0),
        ((0.5, 0.2, 6.0), (333, 222), 280.0, 281.5, 170.0, 100.0),
    ]):
        cameras.append(Camera(look_at(eye, (0.1, 0.2, 0.3), up=(0, 0, 1) if k != 2 else (0, 1, 0)),
                              fx, fy, cx, cy, size[0], size[1], f"img_{k}.png"))
    return cameras


def test_cameras_project_like_the_core(tmp_path):
    cameras = _test_cameras()
    write_transforms_json(tmp_path / "transforms.json", cameras)
    colmap = tmp_path / "colmap"
    colmap.mkdir()
    write_colmap_text(colmap, cameras)
    points = np.random.default_rng(3).normal(size=(50, 3)) * 0.8
    expected = []
    for camera in cameras:
        uv, depth = camera.project(points)
        expected.append({"uv": uv.tolist(), "front": (depth > 0.1).tolist()})
    result = run_bpy("""
        import bpy, numpy as np
        from mathutils import Vector
        from bpy_extras.object_utils import world_to_camera_view
        from blender_gsseg.blender import cameras as camera_io
        scene = bpy.context.scene
        assert bpy.ops.gsseg.import_cameras(filepath=ARGS["transforms"]) == {"FINISHED"}
        collection = scene.gsseg.camera_collection
        objects = sorted((o for o in collection.objects if o.type == "CAMERA"), key=lambda o: o["gsseg_image_name"])
        assert [o["gsseg_image_name"] for o in objects] == ["img_0.png", "img_1.png", "img_2.png"]
        errors, derived_errors = [], []
        for obj, expect in zip(objects, ARGS["expected"]):
            bpy.context.view_layer.objects.active = obj
            assert bpy.ops.gsseg.use_camera() == {"FINISHED"}
            width, height = scene.render.resolution_x, scene.render.resolution_y
            for point, uv, front in zip(ARGS["points"], expect["uv"], expect["front"]):
                if not front:
                    continue
                ndc = world_to_camera_view(scene, obj, Vector(point))
                errors.append(max(abs(ndc.x * width - uv[0]), abs((1 - ndc.y) * height - uv[1])))
            # the camera rebuilt from Blender's own settings (no gsseg_* intrinsics) projects the same
            exact = camera_io.camera_from_object(obj, scene)
            for key in camera_io.INTRINSIC_KEYS:
                del obj["gsseg_" + key]
            derived = camera_io.camera_from_object(obj, scene)
            for attr in ("fx", "fy", "cx", "cy"):
                derived_errors.append(abs(getattr(derived, attr) - getattr(exact, attr)))
            assert (derived.width, derived.height) == (exact.width, exact.height)
            derived_errors.append(float(np.abs(derived.world_to_camera - exact.world_to_camera).max()))
        RESULT["max_error_px"] = max(errors)
        RESULT["points_checked"] = len(errors)
        RESULT["max_derived_error"] = max(derived_errors)
        # COLMAP text model, given as its folder's file
        assert bpy.ops.gsseg.import_cameras(filepath=ARGS["colmap"]) == {"FINISHED"}
        exact = [camera_io.camera_from_object(o) for o in scene.gsseg.camera_collection.objects]
        RESULT["colmap"] = sorted([c.image_name, c.fx, c.fy, c.cx, c.cy, c.width, c.height] for c in exact)
    """, home=tmp_path / "home", args={
        "transforms": str(tmp_path / "transforms.json"), "colmap": str(colmap / "cameras.txt"),
        "points": points.tolist(), "expected": expected})
    assert result["points_checked"] > 60
    assert result["max_error_px"] < 2e-3, result["max_error_px"]
    assert result["max_derived_error"] < 1e-3, result["max_derived_error"]
    assert result["colmap"] == sorted([c.image_name, c.fx, c.fy, c.cx, c.cy, c.width, c.height] for c in cameras)


# ---------------------------------------------------------------------------------------------------------------
# Segmentation

def test_segment_solve_select_delete(tmp_path):
    from PIL import Image

    from synthetic.scene import make_scene

    scene = make_scene(n_spheres=2, points_per_unit_area=60, n_cameras=8, width=64, height=48, seed=2)
    write_gaussians(tmp_path / "scene.ply", scene.gaussians)
    write_cameras_json(tmp_path / "cameras.json", scene.cameras)
    masks = tmp_path / "masks"
    masks.mkdir()
    for camera in scene.cameras:
        Image.fromarray(scene.mask(camera).astype(np.uint8)).save(masks / f"{camera.image_name}.png")
    np.save(tmp_path / "truth.npy", scene.labels)
    result = run_bpy("""
        import bpy, numpy as np, time
        from blender_gsseg.blender import io_splat, segment
        from blender_gsseg.blender import labels as label_list
        from blender_gsseg.core.accumulate import accumulate_weights
        from blender_gsseg.core.cameras import load_cameras
        from blender_gsseg.core.gaussians import read_gaussians
        from blender_gsseg.core.masks import label_index_maps, load_masks
        from blender_gsseg.core.solver import Shares

        def labels_of(mesh):
            values = np.empty(len(mesh.vertices), np.int32)
            mesh.attributes["gsseg_label"].data.foreach_get("value", values)
            return values

        settings = bpy.context.scene.gsseg
        assert bpy.ops.gsseg.import_splat(filepath=ARGS["ply"]) == {"FINISHED"}
        obj = bpy.context.active_object
        assert settings.splat_object == obj
        assert bpy.ops.gsseg.import_cameras(filepath=ARGS["cameras"]) == {"FINISHED"}
        settings.mask_dir = ARGS["masks"]
        settings.scale = 0.5
        settings.backend = "cpu"
        bpy.context.view_layer.objects.active = obj
        start = time.perf_counter()
        assert bpy.ops.gsseg.segment() == {"FINISHED"}
        RESULT["segment_s"] = time.perf_counter() - start
        mesh = obj.data
        labels = labels_of(mesh)
        confidence = np.empty(len(labels), np.float32)
        mesh.attributes["gsseg_confidence"].data.foreach_get("value", confidence)

        # the label display: one colour per label, shown through the modifier's material
        from blender_gsseg.blender import display
        assert obj.gsseg.display == "LABELS"
        modifier = obj.modifiers[display.MODIFIER_NAME]
        assert display.get_modifier_input(modifier, "Material") == display.label_material()
        label_colors = np.empty(4 * len(labels), np.float32)
        mesh.color_attributes["gsseg_label_col"].data.foreach_get("color", label_colors)
        label_colors = label_colors.reshape(-1, 4)
        assert len({tuple(c) for c in label_colors}) == len(set(labels.tolist()))
        assert mesh.color_attributes.active_color_name == "Col"
        obj.gsseg.display = "COLOR"
        assert display.get_modifier_input(modifier, "Material") == display.splat_material()

        # the same through the core alone
        gaussians = read_gaussians(ARGS["ply"])
        cameras = load_cameras(ARGS["cameras"])
        scaled = [c.scaled(0.5) for c in cameras]
        mask_set = load_masks(ARGS["masks"], cameras, sizes=[(c.width, c.height) for c in scaled])
        accumulation = accumulate_weights(gaussians, [scaled[i] for i in mask_set.camera_indices],
                                          label_index_maps(mask_set), mask_set.label_ids, backend="cpu")
        shares = Shares.from_accumulation(accumulation)
        core_labels, core_confidence = shares.solve(0.0)
        assert (labels == core_labels).all()
        assert np.array_equal(confidence, core_confidence)
        truth = np.load(ARGS["truth"])
        seen = labels >= 0
        RESULT["accuracy"] = float((labels[seen] == truth[seen]).mean())
        RESULT["seen"] = float(seen.mean())

        # the interactive path: accumulation in a worker thread, cancellable
        import threading
        from blender_gsseg.core.errors import CancelledError
        inputs = dict(collection=settings.camera_collection, mask_dir=ARGS["masks"], scale=0.5, backend="cpu")
        job = segment.SegmentJob.prepare(bpy.context, obj, **inputs)
        job.cancel_requested = True
        worker = threading.Thread(target=job.run)
        worker.start()
        worker.join()
        try:
            job.finish()
            raise AssertionError("a cancelled job finished")
        except CancelledError:
            pass
        job = segment.SegmentJob.prepare(bpy.context, obj, **inputs)
        worker = threading.Thread(target=job.run)
        worker.start()
        worker.join()
        assert job.finish()["views"] == 8 and (job.done, job.total) == (8, 8)
        assert (labels_of(mesh) == labels).all()

        # gamma slider re-solves from the cache
        obj.gsseg.gamma = 0.6
        assert (labels_of(mesh) == shares.solve(0.6)[0]).all()
        RESULT["changed_by_gamma"] = int((labels_of(mesh) != labels).sum())
        bpy.ops.object.mode_set(mode="EDIT")
        obj.gsseg.gamma = -0.4
        assert obj.mode == "EDIT"
        bpy.ops.object.mode_set(mode="OBJECT")
        assert (labels_of(mesh) == shares.solve(-0.4)[0]).all()
        obj.gsseg.gamma = 0.0

        # select an instance (edit-mode selection), from object and from edit mode
        assert bpy.ops.gsseg.select_instance(label=1) == {"FINISHED"}
        selected = np.zeros(len(labels), bool)
        mesh.attributes[".select_vert"].data.foreach_get("value", selected)
        assert (selected == (labels == 1)).all()
        bpy.ops.object.mode_set(mode="EDIT")
        assert bpy.ops.gsseg.select_instance(label=2, extend=True) == {"FINISHED"}
        bpy.ops.object.mode_set(mode="OBJECT")
        mesh = obj.data
        mesh.attributes[".select_vert"].data.foreach_get("value", selected)
        assert (selected == np.isin(labels, [1, 2])).all()

        # delete an instance: points go, every attribute follows, the cache follows
        colors_before = np.empty(4 * len(labels), np.float32)
        mesh.color_attributes["Col"].data.foreach_get("color", colors_before)
        obj.gsseg.instance = 1
        assert bpy.ops.gsseg.delete_instance() == {"FINISHED"}
        mesh = obj.data
        keep = labels != 1
        assert len(mesh.vertices) == keep.sum()
        assert (labels_of(mesh) == labels[keep]).all()
        colors_after = np.empty(4 * keep.sum(), np.float32)
        mesh.color_attributes["Col"].data.foreach_get("color", colors_after)
        assert (colors_after.reshape(-1, 4) == colors_before.reshape(-1, 4)[keep]).all()
        assert mesh.color_attributes.active_color_name == "Col"
        obj.gsseg.gamma = 0.3
        assert (labels_of(mesh) == shares.solve(0.3)[0][keep]).all()

        # the cache subset follows deletions in both accumulation forms
        bounded = accumulate_weights(gaussians, [scaled[i] for i in mask_set.camera_indices],
                                     label_index_maps(mask_set), mask_set.label_ids, backend="cpu", mode="bounded")
        for full in (accumulation, bounded):
            part = full.subset(keep)
            assert part.n_gaussians == keep.sum()
            assert (Shares.from_accumulation(part).solve(0.2)[0]
                    == Shares.from_accumulation(full).solve(0.2)[0][keep]).all()

        # export with labels: the remaining splats, bit for bit, plus gsseg_label
        assert bpy.ops.gsseg.export_splat(filepath=ARGS["out"], include_label=True) == {"FINISHED"}
        back = read_gaussians(ARGS["out"])
        for name in gaussians.vertex.dtype.names:
            assert back.vertex[name].tobytes() == gaussians.vertex[name][keep].tobytes(), name
        assert (back.vertex["gsseg_label"] == shares.solve(0.3)[0][keep]).all()
        RESULT["n"] = len(labels)
        RESULT["removed"] = int((~keep).sum())

        # the panel draws (a recording layout checks every property and operator it names)
        icons = set(bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys())
        class Layout:
            def __init__(self):
                self.props, self.operators, self.lists = [], [], []
            def __getattr__(self, name):
                return lambda *args, **kwargs: self._check(kwargs)
            def _check(self, kwargs):
                assert kwargs.get("icon", "NONE") in icons, kwargs["icon"]
                return self
            def template_list(self, listtype, list_id, data, propname, active_data, active_propname, **kwargs):
                assert hasattr(bpy.types, listtype), listtype
                assert propname in data.bl_rna.properties and active_propname in active_data.bl_rna.properties
                self.lists.append((listtype, propname, active_propname))
                return self
            def prop(self, data, name, **kwargs):
                assert name in data.bl_rna.properties, name
                self.props.append(name)
                return self._check(kwargs)
            def operator(self, idname, **kwargs):
                module, name = idname.split(".")
                assert hasattr(getattr(bpy.ops, module), name), idname
                self.operators.append(idname)
                return self._check(kwargs)
        import types
        panel = types.SimpleNamespace(layout=Layout())
        bpy.context.view_layer.objects.active = obj
        bpy.types.GSSEG_PT_main.draw(panel, bpy.context)
        assert {"splat_object", "camera_collection", "mask_dir", "scale", "backend", "gamma", "display",
                "instance", "delete_halo", "proxy_mask_dir"} <= set(panel.layout.props), panel.layout.props
        assert {"gsseg.segment", "gsseg.masks_from_proxies", "gsseg.select_instance", "gsseg.deselect_instance",
                "gsseg.select_unseen", "gsseg.invert_selection", "gsseg.hide_instance", "gsseg.isolate_instance",
                "gsseg.reveal", "gsseg.delete_instance", "gsseg.separate_instance", "gsseg.assign_instance",
                "gsseg.merge_instances"} <= set(panel.layout.operators), panel.layout.operators
        assert panel.layout.lists == [("GSSEG_UL_instances", "labels", "labels_index")]
        # the list rows: the labels of the segmentation but the deleted one, default names, the CLI's colours,
        # point counts
        from blender_gsseg.core.pipeline import label_colour
        rows = [(i.level, i.id, i.name, i.count) for i in obj.gsseg.labels]
        counts = dict(zip(*np.unique(labels_of(obj.data), return_counts=True)))
        assert rows == [(-1, k, "background" if k == 0 else f"label_{k}", int(counts.get(k, 0)))
                        for k in (0, 2)], rows
        assert label_list.hex_colour(obj.gsseg.labels[1].color) == "#%02x%02x%02x" % label_colour(2)
        # a mesh object shows its proxy setting
        bpy.ops.mesh.primitive_cube_add()
        panel = types.SimpleNamespace(layout=Layout())
        bpy.types.GSSEG_PT_main.draw(panel, bpy.context)
        assert "proxy_instance" in panel.layout.props
    """, home=tmp_path / "home", args={
        "ply": str(tmp_path / "scene.ply"), "cameras": str(tmp_path / "cameras.json"), "masks": str(masks),
        "truth": str(tmp_path / "truth.npy"), "out": str(tmp_path / "out.ply")})
    assert result["accuracy"] > 0.8, result  # 32x24 working masks, sparse splats: a sanity check only
    assert result["seen"] > 0.5, result
    assert result["removed"] > 0
    assert result["changed_by_gamma"] > 0
    print(f"segment {result['segment_s']:.2f} s for {result['n']} splats; accuracy {result['accuracy']:.3f}")
