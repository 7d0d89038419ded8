"""Label maps rendered from proxy objects (meshes standing in for instances) with Blender's renderer.

The artist gives mesh objects an instance id (``Object.gsseg.proxy_instance`` > 0). For each camera, Cycles
renders the object-index pass of the proxies alone (a temporary scene holding only them and a temporary
camera with the exact intrinsics of the view at its full resolution), 1 sample per pixel through a box
filter of width 0.01 px: each pixel is the proxy hit by the ray through its centre, and proxies occlude each
other as the geometry says. The pass goes through the compositor into a 32-bit EXR, read back with
``bpy.data.images`` (ids are exact in float32). The label maps are then fed to the accumulator like mask
images would be (:class:`ProxyMaskJob`).

Nothing of the user's scene changes: proxies are linked into the temporary scene; their ``pass_index``,
``hide_render`` and camera visibility are set for the render and restored afterwards.
"""

import os
import shutil
import tempfile
import time

import bpy
import numpy as np

from ..core.errors import BadInputError
from . import camera_objects as camera_io
from . import io_splat
from .segment import SegmentJob

RENDERABLE_TYPES = {"MESH", "CURVE", "SURFACE", "META", "FONT", "CURVES", "POINTCLOUD", "VOLUME"}
SCENE_NAME = "gsseg proxy masks"


def proxy_objects(scene):
    """The proxies of ``scene``: renderable objects with an instance id, splat objects excluded."""
    return sorted((obj for obj in scene.objects
                   if obj.type in RENDERABLE_TYPES and obj.gsseg.proxy_instance > 0
                   and not io_splat.is_splat_object(obj)), key=lambda o: o.name)


def _compositor(scene):
    """Route the object-index pass to the composite output of ``scene`` (Blender 5: a compositing node group;
    4.x: the scene's node tree)."""
    if hasattr(scene, "compositing_node_group"):
        tree = bpy.data.node_groups.new(SCENE_NAME, "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        layers = tree.nodes.new("CompositorNodeRLayers")
        layers.scene = scene
        output = tree.nodes.new("NodeGroupOutput")
        tree.links.new(layers.outputs["Object Index"], output.inputs[0])
        scene.compositing_node_group = tree
        return tree
    scene.use_nodes = True  # Blender 4.x
    tree = scene.node_tree
    tree.nodes.clear()
    layers = tree.nodes.new("CompositorNodeRLayers")
    layers.scene = scene
    composite = tree.nodes.new("CompositorNodeComposite")
    tree.links.new(layers.outputs["IndexOB"], composite.inputs["Image"])
    return None


def _configure(scene, source_scene):
    scene.render.engine = "CYCLES"
    cycles = scene.cycles
    cycles.samples = 1
    cycles.use_adaptive_sampling = False
    cycles.use_denoising = False
    cycles.pixel_filter_type = "BOX"
    cycles.filter_width = 0.01  # one ray through each pixel centre
    cycles.max_bounces = 0
    cycles.seed = 0
    cycles.device = getattr(getattr(source_scene, "cycles", None), "device", "CPU")
    render = scene.render
    render.resolution_percentage = 100
    render.film_transparent = True
    render.use_compositing = True
    render.use_sequencer = False
    render.dither_intensity = 0.0
    render.use_border = False
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    settings = render.image_settings
    if hasattr(settings, "media_type"):
        settings.media_type = "IMAGE"
    settings.file_format = "OPEN_EXR"
    settings.color_mode = "RGB"
    settings.color_depth = "32"
    settings.exr_codec = "ZIP"
    scene.view_layers[0].use_pass_object_index = True


def _read_index(path, width, height):
    image = bpy.data.images.load(path, check_existing=False)
    try:
        image.colorspace_settings.is_data = True
        pixels = np.empty(len(image.pixels), dtype=np.float32)
        image.pixels.foreach_get(pixels)
        size = tuple(image.size)
    finally:
        bpy.data.images.remove(image)
    if size != (width, height):
        raise BadInputError(f"proxy render came back at {size[0]}x{size[1]}, expected {width}x{height}")
    values = pixels.reshape(height, width, -1)[::-1, :, 0]  # Blender images are stored bottom row first
    return np.rint(values).astype(np.int32)


def render_label_maps(context, cameras, proxies=None, progress=None):
    """int32 label maps [H, W] (the proxies' instance ids, 0 where none is hit), one per core camera (world to
    camera, intrinsics and size as given: pass them already scaled to the working resolution)."""
    source = context.scene
    proxies = proxy_objects(source) if proxies is None else list(proxies)
    if not proxies:
        raise BadInputError("no proxy objects: give mesh objects an instance id (Proxy of Instance) first")
    folder = tempfile.mkdtemp(prefix="gsseg-proxies-")
    scene = bpy.data.scenes.new(SCENE_NAME)
    camera_data = bpy.data.cameras.new(SCENE_NAME)
    camera_obj = bpy.data.objects.new(SCENE_NAME, camera_data)
    saved = [(obj, obj.pass_index, obj.hide_render, getattr(obj, "visible_camera", True)) for obj in proxies]
    tree = None
    try:
        for obj in proxies:
            scene.collection.objects.link(obj)
            obj.pass_index = obj.gsseg.proxy_instance
            obj.hide_render = False
            if hasattr(obj, "visible_camera"):
                obj.visible_camera = True
        scene.collection.objects.link(camera_obj)
        scene.camera = camera_obj
        camera_data.clip_start = source.camera.data.clip_start if source.camera is not None else 0.01
        camera_data.clip_start = min(camera_data.clip_start, 0.01)
        camera_data.clip_end = 1e5
        _configure(scene, source)
        tree = _compositor(scene)
        maps = []
        for index, camera in enumerate(cameras):
            camera_io.configure_camera_object(camera_obj, camera)
            _, _, _, aspect_x, aspect_y = camera_io.lens_settings(camera)
            scene.render.resolution_x = camera.width
            scene.render.resolution_y = camera.height
            scene.render.pixel_aspect_x = aspect_x
            scene.render.pixel_aspect_y = aspect_y
            path = os.path.join(folder, f"view_{index:05d}.exr")
            scene.render.filepath = path
            bpy.ops.render.render(write_still=True, scene=scene.name)
            if not os.path.isfile(path):
                raise BadInputError(f"the proxy render of view {camera.image_name} wrote no image")
            maps.append(_read_index(path, camera.width, camera.height))
            os.unlink(path)
            if progress is not None:
                progress(index + 1, len(cameras))
        return maps
    finally:
        for obj, pass_index, hide_render, visible_camera in saved:
            obj.pass_index = pass_index
            obj.hide_render = hide_render
            if hasattr(obj, "visible_camera"):
                obj.visible_camera = visible_camera
        bpy.data.scenes.remove(scene)
        bpy.data.objects.remove(camera_obj)
        bpy.data.cameras.remove(camera_data)
        if tree is not None:
            bpy.data.node_groups.remove(tree)
        shutil.rmtree(folder, ignore_errors=True)


SHOWN_KEY = "gsseg_proxy_display"  # a proxy's own display before segmenting, restored when it stops being one


def show_as_proxies(names_and_labels):
    """After segmenting from proxies: each proxy object (by name, with the instance it stood for) marked as the
    instance's proxy, drawn as wire and left out of renders, where its solid faces would hide the splat; its
    own display kept, for :func:`restore_display` when it stops being a proxy (its instance id set to 0).
    Returns the objects changed."""
    shown = []
    for name, label in names_and_labels:
        obj = bpy.data.objects.get(name)
        if obj is None or io_splat.is_splat_object(obj):
            continue
        if SHOWN_KEY not in obj:
            obj[SHOWN_KEY] = {"display_type": obj.display_type, "hide_render": int(obj.hide_render)}
        if obj.gsseg.proxy_instance != label:
            obj.gsseg.proxy_instance = label
        obj.display_type = "WIRE"
        obj.hide_render = True
        shown.append(obj)
    return shown


def restore_display(obj):
    """Give a former proxy back the display it had before segmenting (see :func:`show_as_proxies`); False when
    it had none kept."""
    saved = obj.get(SHOWN_KEY)
    if saved is None:
        return False
    obj.display_type = str(saved["display_type"])
    obj.hide_render = bool(saved["hide_render"])
    del obj[SHOWN_KEY]
    return True


# Seconds of one proxy render as the job makes it (a scene, Cycles' object-index pass, written and read back, one
# view per call): a fixed part and a part per megapixel, measured with bpy 5.0 on the CPU (2 shared cores): 0.025 s
# at 64x48, 0.38 s at 640x480, 1.41 s at 1280x960, 2.17 s at 1920x1080. After a Masks from Proxies, the model is
# scaled by what its renders took against what the model said (a faster or busier machine, a warm Cycles), so
# the same cameras are then estimated at the time they took.
RENDER_SECONDS_PER_VIEW = 0.07
RENDER_SECONDS_PER_MEGAPIXEL = 1.0
_MEASURED = {}  # of the last Masks from Proxies of this session: "seconds" its renders took, "scale" / the model


def _modelled_seconds(cameras):
    return sum(RENDER_SECONDS_PER_VIEW + RENDER_SECONDS_PER_MEGAPIXEL * camera.width * camera.height / 1e6
               for camera in cameras)


def render_seconds(cameras):
    """About how long Masks from Proxies renders ``cameras`` (at their full resolution)."""
    return _MEASURED.get("scale", 1.0) * _modelled_seconds(cameras)


def masks_plan(context):
    """One line for the Segment panel when the scene has proxies and cameras: about how long Masks from Proxies
    takes, its renders (one per camera, at full resolution) and then the lift; None otherwise."""
    from .segment import about, lift_estimate

    settings = context.scene.gsseg
    if settings.camera_collection is None or not proxy_objects(context.scene):
        return None
    cameras = [camera for _, camera in camera_io.cameras_in_collection(settings.camera_collection, context.scene)]
    if not cameras:
        return None
    _, lift, _ = lift_estimate(context)
    renders = render_seconds(cameras)
    return (f"Masks from Proxies: about {about(renders + (lift or 0.0))} ({len(cameras)} renders, about "
            f"{about(renders)}, then the lift)")


def save_label_maps(folder, cameras, maps):
    """Write the label maps as PNG masks named after the camera images (8-bit, or 16-bit above 255), all
    together through the core's commit, so the command line can use them (``gsseg segment --masks folder``)."""
    from PIL import Image

    from ..core.files.commit import Commit

    folder = bpy.path.abspath(folder)
    written = []
    with Commit() as commit:
        for camera, label_map in zip(cameras, maps, strict=True):
            stem = os.path.splitext(camera.image_name)[0] or "view"
            path = os.path.join(folder, stem + ".png")
            depth = np.uint16 if label_map.max(initial=0) > 255 else np.uint8
            Image.fromarray(label_map.astype(depth)).save(commit.file(path), format="PNG")
            written.append(path)
    return written


class ProxyMaskJob:
    """Masks from Proxies as a job: one proxy render per camera at the camera's full resolution
    (:meth:`step_in_main_thread`, Blender's renderer: the main thread, one view per call, so Esc is seen between
    views), the maps saved at full resolution when asked, then the lifting at the working scale (:meth:`run`,
    a worker thread) and :meth:`finish` (cache, solve, attributes, as Segment)."""

    def __init__(self, context, obj, *, collection, scale=1.0, backend="auto", proxies=None, save_dir=""):
        if collection is None:
            raise BadInputError("no camera collection chosen")
        pairs = camera_io.cameras_in_collection(collection, context.scene)
        if not pairs:
            raise BadInputError(f"collection '{collection.name}' holds no cameras")
        self.proxies = proxy_objects(context.scene) if proxies is None else list(proxies)
        if not self.proxies:
            raise BadInputError("no proxy objects: give mesh objects an instance id (Proxy of Instance) first")
        self.proxy_names = [(proxy.name, proxy.gsseg.proxy_instance) for proxy in self.proxies]
        self.context, self.object_name = context, obj.name
        self.cameras = [camera for _, camera in pairs]
        self.scale, self.backend, self.save_dir = scale, backend, save_dir
        self.maps = []
        self.render_seconds = 0.0
        self.done, self.total = 0, len(self.cameras)
        self._cancel = False
        self.lifting = None

    @property
    def cancel_requested(self):
        return self._cancel

    @cancel_requested.setter
    def cancel_requested(self, value):  # Esc reaches the lifting too once it runs
        self._cancel = value
        if self.lifting is not None:
            self.lifting.cancel_requested = value

    def step_in_main_thread(self):
        """Render the next view; False once every view is rendered (and saved when asked)."""
        from ..core.errors import CancelledError

        if self.cancel_requested:
            raise CancelledError("Masks from Proxies cancelled")
        if len(self.maps) < len(self.cameras):
            camera = self.cameras[len(self.maps)]
            start = time.perf_counter()
            self.maps += render_label_maps(self.context, [camera], self.proxies)
            self.render_seconds += time.perf_counter() - start
            self.done = len(self.maps)
            if self.done == len(self.cameras):  # the panel's next estimate uses this machine's rate
                _MEASURED["seconds"] = self.render_seconds
                _MEASURED["scale"] = self.render_seconds / _modelled_seconds(self.cameras)
            return True
        if self.lifting is None:
            if self.save_dir:
                save_label_maps(self.save_dir, self.cameras, self.maps)
            obj = bpy.data.objects.get(self.object_name)
            if obj is None:
                raise BadInputError(f"'{self.object_name}' was deleted")
            self.lifting = SegmentJob.from_label_maps(obj, self.cameras, self.maps, backend=self.backend,
                                                      scale=self.scale)
            self.lifting.cancel_requested = self._cancel
            self.done, self.total = 0, len(self.lifting.views)
        return False

    @property
    def error(self):
        return None if self.lifting is None else self.lifting.error

    def run(self):
        self.lifting.run()

    def finish(self):
        from . import labels as label_list
        from .attributes import ObjectMode

        result = self.lifting.finish()
        obj = bpy.data.objects[result["object"]]
        with ObjectMode(obj, stay=True):  # the instances named and coloured after their proxies, as from proxies
            for name, label in sorted(self.proxy_names, key=lambda pair: pair[0], reverse=True):  # first name wins
                proxy, item = bpy.data.objects.get(name), label_list.find_item(obj, label)
                if item is None or proxy is None:
                    continue
                item.name = name
                colour = proxy_colour(proxy)
                if colour is not None:
                    item.color = colour
            label_list.refresh_display(obj)
        show_as_proxies(self.proxy_names)
        result["labels_rendered"] = sorted({int(v) for m in self.maps for v in np.unique(m)})
        return result


# ---------------------------------------------------------------------------------------------------------------
# Segmentation from proxies alone (no cameras, no masks): core.scene.proxy_segment

def proxy_colour(obj):
    """sRGB colour an instance takes from its proxy: its material's viewport colour, else the object's colour
    when it is not the default white; None when the proxy has neither."""
    material = obj.active_material
    if material is not None:
        return tuple(float(c) for c in material.diffuse_color[:3])
    if tuple(obj.color[:3]) != (1.0, 1.0, 1.0):
        return tuple(float(c) for c in obj.color[:3])
    return None


def proxy_instances(proxies):
    """[(proxy object, instance id)]: its ``proxy_instance`` where set, else the next free id (in name order)."""
    taken = {obj.gsseg.proxy_instance for obj in proxies if obj.gsseg.proxy_instance > 0}
    free = (i for i in range(1, 1 << 30) if i not in taken)
    return [(obj, obj.gsseg.proxy_instance if obj.gsseg.proxy_instance > 0 else next(free))
            for obj in sorted(proxies, key=lambda o: o.name)]


class ProxyJob:
    """One segmentation from proxies: inputs from Blender in the main thread (:meth:`prepare`), the proxies'
    accumulation (:meth:`run`, pure core, safe in a worker thread), then :meth:`finish` in the main thread (the
    cache and the solve as after Segment, the instance list named and coloured after the proxies)."""

    def __init__(self, obj, gaussians, proxies, names, colours):
        self.object_name = obj.name
        self.gaussians = gaussians
        self.proxies = proxies
        self.names, self.colours = names, colours
        self.done, self.total = 0, 1
        self.cancel_requested = False
        self.label_ids = self.weights = None  # the proxies' accumulation (core.scene.proxy_segment)
        self.error = None

    @classmethod
    def prepare(cls, context, obj, proxies):
        from ..core.scene.proxy_segment import Proxy
        from .attributes import ObjectMode
        from .editing import world_triangles

        proxies = [proxy for proxy in proxies if proxy.type in RENDERABLE_TYPES and proxy != obj]
        if not proxies:
            raise BadInputError("select the proxy objects (meshes around the objects), or give meshes an "
                                "instance id ('Proxy of Instance')")
        with ObjectMode(obj):
            gaussians = io_splat.gaussians_from_object(obj)
        to_local = np.linalg.inv(np.array(obj.matrix_world, dtype=np.float64))  # proxies into the splat's frame
        core_proxies, names, colours = [], {}, {}
        for proxy, label in proxy_instances(proxies):
            triangles = world_triangles(proxy)
            triangles = triangles @ to_local[:3, :3].T + to_local[:3, 3]
            core_proxies.append(Proxy(label, triangles, proxy.name))  # its name finds the object again
            names[label], colours[label] = proxy.name, proxy_colour(proxy)
        return cls(obj, gaussians, core_proxies, names, colours)

    def _progress(self, done, total):
        self.done, self.total = done, total

    def run(self):
        from ..core.scene.proxy_segment import proxy_weights

        try:
            self.label_ids, self.weights = proxy_weights(self.gaussians, self.proxies, progress=self._progress,
                                                         cancel=lambda: self.cancel_requested)
        except Exception as error:  # re-raised in the main thread by finish()
            self.error = error
        finally:
            self.gaussians = None  # free the inputs early

    def finish(self):
        """Cache the proxies' accumulation as Segment caches the masks' (a sidecar beside the .blend, else in
        the temporary folder; ``gsseg_index``), solve it at the object's gamma (gamma 0: the proxies' labels),
        and name and colour the instances after the proxies."""
        from . import labels as label_list
        from ..core.files.labels import LABEL_PROPERTY
        from ..core.lift.accumulate import Accumulation
        from ..core.lift.sidecar import save_accumulation
        from .attributes import ObjectMode, point_count, read_attribute
        from .segment import apply_gamma, cache_path_for, write_point_index

        if self.error is not None:
            raise self.error
        obj = bpy.data.objects.get(self.object_name)
        if not io_splat.is_splat_object(obj) or point_count(obj.data) != self.weights.shape[1]:
            raise BadInputError(f"'{self.object_name}' changed while it was being segmented")
        path = cache_path_for(obj)
        save_accumulation(path, Accumulation(self.label_ids, self.weights))
        with ObjectMode(obj, stay=True):
            obj.gsseg.accumulation_path = path
            write_point_index(obj)
            label_list.clear_edits(obj)  # a new segmentation: merges and manual labels referred to the old ids
            label_list.mark_table(obj)  # labels made here: export writes their names and colours
        apply_gamma(obj, new_ids=self.label_ids)
        with ObjectMode(obj, stay=True):
            for label, name in self.names.items():
                item = label_list.find_item(obj, label)
                if item is not None:
                    item.name = name
                    if self.colours[label] is not None:
                        item.color = self.colours[label]
            label_list.refresh_display(obj)
            labels = read_attribute(obj.data, LABEL_PROPERTY)
        show_as_proxies([(proxy.name, proxy.label) for proxy in self.proxies])
        counts = {label: int(np.count_nonzero(labels == label)) for label in self.names}
        return {"object": obj.name, "counts": counts, "proxies": len(self.proxies), "path": path}
