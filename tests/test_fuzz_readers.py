"""Our own fuzzing of every splat reader (issue 29): damaged and hostile files made from small valid seeds (bit
flips, cuts, overwritten bytes, header numbers and JSON fields replaced by hostile values, huge counts), each read
through :func:`read_gaussians`. The promise checked: a file reads as a valid scene, or is refused with ONE line
naming it (BadInputError, exit 2), or is refused before allocating (MemoryBudgetError, exit 3). Never another
exception, never a traceback.

Deterministic and bounded in the quick loop (``derandomize=True``, GSSEG_FUZZ_EXAMPLES examples per reader,
default 60: a few seconds each); run longer with, e.g., ``GSSEG_FUZZ_EXAMPLES=5000 python -m pytest -m fuzz
tests/test_fuzz_readers.py``, and with fresh random examples each run with ``GSSEG_FUZZ_RANDOM=1``. A failure
prints the smallest mutation Hypothesis found: add it to tests/test_reader_defects.py as a regression test when
fixing it."""

import functools
import gzip
import io
import json
import os
import re
import struct
import sys
import zipfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from test_formats import random_scene, scene_to_ply_bytes  # noqa: E402

from blender_gsseg.core.errors import BadInputError, MemoryBudgetError  # noqa: E402
from blender_gsseg.core.files.splats import read_gaussians, write_splat_file  # noqa: E402

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("GSSEG_FUZZ_EXAMPLES", "60"))
EXPLORE = os.environ.get("GSSEG_FUZZ_RANDOM") == "1"  # a fresh random sequence each run (exploring, not CI)
FUZZ = settings(max_examples=EXAMPLES, derandomize=not EXPLORE, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
DATA_370 = os.path.join(os.path.dirname(__file__), "data", "splat_transform_3.7.0")

# Numbers a hostile file puts where a count, an offset, a size or a degree belongs.
HOSTILE_INTS = [0, 1, 2, 3, 4, 9, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 10 ** 9,
                10 ** 13, 2 ** 63 - 1, 2 ** 64 - 1, -1, -5, -12, -120000]
HOSTILE_JSON = HOSTILE_INTS + [0.5, 1e308, -1e308, "1e400", None, True, "", "x", "MAT9", [], {}, [1], {"a": 1}]


# ----------------------------------------------------------------------------------------------------------------
# seeds: small valid files of every format


@functools.lru_cache(maxsize=None)
def _scene_ply(degree=1, count=12, seed=29):
    return scene_to_ply_bytes(random_scene(count, degree=degree, seed=seed))


@functools.lru_cache(maxsize=None)
def _written(ending):
    """A valid file of ``ending`` as gsseg writes it, from the 12-splat seed scene."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        source = os.path.join(folder, "seed.ply")
        with open(source, "wb") as handle:
            handle.write(_scene_ply())
        out = os.path.join(folder, "seed" + ending)
        write_splat_file(out, read_gaussians(source))
        with open(out, "rb") as handle:
            return handle.read()


@functools.lru_cache(maxsize=None)
def _ascii_ply():
    scene = read_gaussians_bytes(_scene_ply(), ".ply")
    names = scene.vertex.dtype.names
    lines = ["ply", "format ascii 1.0", "comment fuzz seed", f"element vertex {len(scene)}"]
    lines += [f"property float {n}" for n in names] + ["end_header"]
    lines += [" ".join(repr(float(row[n])) for n in names) for row in scene.vertex]
    return ("\n".join(lines) + "\n").encode("ascii")


@functools.lru_cache(maxsize=None)
def _legacy_spz():
    from test_formats import encode_spz

    return encode_spz(random_scene(12, degree=1, seed=29), version=3)


def _fixture(name):
    with open(os.path.join(DATA_370, name), "rb") as handle:
        return handle.read()


def read_gaussians_bytes(data, ending):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "f" + ending)
        with open(path, "wb") as handle:
            handle.write(data)
        return read_gaussians(path)


# ----------------------------------------------------------------------------------------------------------------
# mutations


@st.composite
def byte_mutations(draw, seed):
    """Bit flips, overwritten runs, cuts, inserted and deleted runs, anywhere in ``seed``."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "overwrite", "int", "cut", "insert", "delete"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite":
            run = draw(st.binary(min_size=1, max_size=8))
            data[at:at + len(run)] = run
        elif kind == "int":  # a hostile little-endian number where a field may be
            value = draw(st.sampled_from(HOSTILE_INTS))
            width = draw(st.sampled_from([2, 4, 8]))
            data[at:at + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at:at + draw(st.integers(1, 64))]
    return bytes(data)


@st.composite
def header_number_edits(draw, seed):
    """A PLY header with one of its numbers (counts, list sizes) replaced by a hostile one, or a header line
    edited (duplicated, a word inserted), the body left as it was."""
    end = seed.index(b"end_header\n") + len(b"end_header\n")
    head, body = seed[:end].decode("ascii"), seed[end:]
    kind = draw(st.sampled_from(["number", "duplicate", "word", "comment"]))
    lines = head.split("\n")
    index = draw(st.integers(1, len(lines) - 2))
    if kind == "number":
        numbers = list(re.finditer(r"\d+", head))
        match = draw(st.sampled_from(numbers))
        head = head[:match.start()] + str(draw(st.sampled_from(HOSTILE_INTS))) + head[match.end():]
    elif kind == "duplicate":
        lines.insert(index, lines[index])
        head = "\n".join(lines)
    elif kind == "word":
        lines[index] += " " + draw(st.sampled_from(["end_header", "list", "x", "uchar", "1e9", "-1"]))
        head = "\n".join(lines)
    else:
        text = draw(st.text(min_size=0, max_size=12))
        lines.insert(index, "comment " + text)
        head = "\n".join(lines)
    return head.encode("utf-8", errors="surrogatepass") + body


def _json_paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_paths(item, path + (key,))
    elif isinstance(value, list):
        for key, item in enumerate(value):
            yield from _json_paths(item, path + (key,))


def _replace(document, path, new):
    if not path:
        return new
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return document


def _json_text(document):
    """JSON with Infinity/NaN written the way a hostile file does (1e400)."""
    return json.dumps(document).replace('"1e400"', "1e400")


@st.composite
def glb_edits(draw):
    """Our .glb with one JSON field (any depth) replaced by a hostile value, or its bytes mutated."""
    seed = _written(".glb")
    if draw(st.booleans()):
        return draw(byte_mutations(seed))
    length = struct.unpack_from("<I", seed, 12)[0]
    document, blob = json.loads(seed[20:20 + length]), seed[20 + length + 8:]
    paths = list(_json_paths(document))
    for _ in range(draw(st.integers(1, 3))):
        document = _replace(document, draw(st.sampled_from(paths)), draw(st.sampled_from(HOSTILE_JSON)))
        paths = list(_json_paths(document))
    text = _json_text(document).encode()
    text += b" " * (-len(text) % 4)
    return (struct.pack("<III", 0x46546C67, 2, 12 + 8 + len(text) + 8 + len(blob))
            + struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(blob), 0x004E4942) + blob)


@st.composite
def sog_edits(draw):
    """Our .sog with one meta.json field replaced, a member's bytes mutated, or the zip's bytes mutated."""
    seed = _written(".sog")
    kind = draw(st.sampled_from(["zip", "meta", "member"]))
    if kind == "zip":
        return draw(byte_mutations(seed))
    with zipfile.ZipFile(io.BytesIO(seed)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    if kind == "meta":
        meta = json.loads(members["meta.json"])
        for _ in range(draw(st.integers(1, 2))):
            meta = _replace(meta, draw(st.sampled_from(list(_json_paths(meta)))), draw(st.sampled_from(HOSTILE_JSON)))
        members["meta.json"] = _json_text(meta).encode()
    else:
        name = draw(st.sampled_from(sorted(members)))
        members[name] = draw(byte_mutations(members[name]))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


@st.composite
def legacy_spz_edits(draw):
    """A gzip .spz whose inflated header or data is mutated (then compressed again), or its gzip bytes."""
    seed = _legacy_spz()
    if draw(st.booleans()):
        return draw(byte_mutations(seed))
    inner = bytearray(gzip.decompress(seed))
    field = draw(st.sampled_from([(4, 4), (8, 4), (12, 1), (13, 1), (14, 1)]))  # version, count, degree, bits, flags
    value = draw(st.sampled_from(HOSTILE_INTS))
    inner[field[0]:field[0] + field[1]] = (value % (1 << (8 * field[1]))).to_bytes(field[1], "little")
    if draw(st.booleans()):
        inner = bytearray(draw(byte_mutations(bytes(inner))))
    return gzip.compress(bytes(inner), mtime=0)


# ----------------------------------------------------------------------------------------------------------------
# the promise


def read_or_refuse(read, where, budget_names_it=True):
    """``read()``'s result, or None when it refused in the one way the promise allows: a BadInputError of one line
    that starts with ``where``, or a MemoryBudgetError of one line (naming ``where`` when ``budget_names_it``)."""
    try:
        return read()
    except BadInputError as error:
        message = str(error)
        assert message.startswith(str(where)) and "\n" not in message, message
    except MemoryBudgetError as error:
        assert (str(where) in str(error) or not budget_names_it) and "\n" not in str(error), str(error)
    return None


def check_promise(tmp_path, data, ending):
    """Reading ``data`` as a file of ``ending``: a valid scene, one line naming the file, or a budget refusal."""
    path = tmp_path / ("fuzzed" + ending)
    path.write_bytes(data)
    scene = read_or_refuse(lambda: read_gaussians(path), path)
    if scene is None:
        return
    # read: a scene every later step can use (check() passed inside read_gaussians)
    assert len(scene) >= 0
    scene.sh_rest  # noqa: B018  the SH bands it claims are there


SEEDS = {
    "ply binary": (lambda: _scene_ply(), ".ply"),
    "ply ascii": (_ascii_ply, ".ply"),
    "compressed ply": (lambda: _written(".compressed.ply"), ".compressed.ply"),
    "spz v4": (lambda: _written(".spz"), ".spz"),
    "spz legacy": (_legacy_spz, ".spz"),
    "sog": (lambda: _written(".sog"), ".sog"),
    "ksplat": (lambda: _fixture("gs3d_sh2_l0.ksplat"), ".ksplat"),
    "ksplat level 1": (lambda: _fixture("gs3d_sh1_300_l1.ksplat"), ".ksplat"),
    "glb": (lambda: _written(".glb"), ".glb"),
    "splat": (lambda: _written(".splat"), ".splat"),
}


@pytest.mark.parametrize("name", list(SEEDS))
def test_seeds_read_exactly(tmp_path, name):
    """Each seed, unmutated, reads (the fuzzing starts from valid files)."""
    make, ending = SEEDS[name]
    path = tmp_path / ("seed" + ending)
    path.write_bytes(make())
    assert len(read_gaussians(path)) > 0


@pytest.mark.parametrize("name", list(SEEDS))
@FUZZ
@given(data=st.data())
def test_damaged_bytes(tmp_path, name, data):
    make, ending = SEEDS[name]
    check_promise(tmp_path, data.draw(byte_mutations(make())), ending)


@pytest.mark.parametrize("name", ["ply binary", "ply ascii", "compressed ply"])
@FUZZ
@given(data=st.data())
def test_ply_header_edits(tmp_path, name, data):
    make, ending = SEEDS[name]
    check_promise(tmp_path, data.draw(header_number_edits(make())), ending)


@FUZZ
@given(data=glb_edits())
def test_glb_json_edits(tmp_path, data):
    check_promise(tmp_path, data, ".glb")


@FUZZ
@given(data=sog_edits())
def test_sog_edits(tmp_path, data):
    check_promise(tmp_path, data, ".sog")


@FUZZ
@given(data=legacy_spz_edits())
def test_legacy_spz_header_edits(tmp_path, data):
    check_promise(tmp_path, data, ".spz")


@pytest.mark.parametrize("name", ["spz v4", "ksplat", "ksplat level 1", "splat"])
@FUZZ
@given(field=st.integers(0, 95), width=st.sampled_from([1, 2, 4]), value=st.sampled_from(HOSTILE_INTS))
def test_binary_header_fields(tmp_path, name, field, width, value):
    """A hostile number in the first 96 bytes (the SPZ header and TOC, .splat's first splats), or in the first 48
    bytes of the .ksplat main header and of its first section header."""
    make, ending = SEEDS[name]
    data = bytearray(make())
    at = field if name.startswith("spz") or name == "splat" else (field if field < 48 else 4096 + field - 48)
    data[at:at + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
    check_promise(tmp_path, bytes(data), ending)


# ----------------------------------------------------------------------------------------------------------------
# cameras files and mask images (their readers live beside the splat readers in core/files)


@functools.lru_cache(maxsize=None)
def _camera_seeds():
    """{name: {file name: bytes}}: three demo cameras as cameras.json, COLMAP binary and text, transforms.json."""
    import tempfile

    from blender_gsseg.core.files.camera_files import load_cameras
    from blender_gsseg.core.files.colmap import write_colmap_binary, write_colmap_text
    from blender_gsseg.core.files.nerf_transforms import write_transforms_json

    demo = os.path.join(os.path.dirname(os.path.dirname(__file__)), "blender_gsseg", "data", "demo")
    cameras = load_cameras(os.path.join(demo, "cameras.json"))[:3]
    seeds = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, write in (("colmap bin", write_colmap_binary), ("colmap txt", write_colmap_text)):
            out = os.path.join(folder, name.replace(" ", "_"))
            os.makedirs(out)
            write(out, cameras)
            seeds[name] = {f: open(os.path.join(out, f), "rb").read() for f in os.listdir(out)
                           if f.startswith(("cameras", "images"))}
        write_transforms_json(os.path.join(folder, "transforms.json"), cameras)
        seeds["transforms.json"] = {"transforms.json": open(os.path.join(folder, "transforms.json"), "rb").read()}
    with open(os.path.join(demo, "cameras.json"), "rb") as handle:
        entries = json.loads(handle.read())[:3]
    seeds["cameras.json"] = {"cameras.json": json.dumps(entries).encode()}
    return seeds


@st.composite
def camera_edits(draw, name):
    files = dict(_camera_seeds()[name])
    target = draw(st.sampled_from(sorted(files)))
    if target.endswith(".json") and draw(st.booleans()):
        document = json.loads(files[target])
        for _ in range(draw(st.integers(1, 2))):
            document = _replace(document, draw(st.sampled_from(list(_json_paths(document)))),
                                draw(st.sampled_from(HOSTILE_JSON)))
        files[target] = _json_text(document).encode()
    elif target.endswith(".txt") and draw(st.booleans()):  # a number of a line replaced by a hostile one
        text = files[target].decode()
        numbers = list(re.finditer(r"-?\d+(\.\d+)?(e-?\d+)?", text))
        match = draw(st.sampled_from(numbers))
        hostile = draw(st.sampled_from([str(v) for v in HOSTILE_INTS] + ["nan", "inf", "1e400", "x", ""]))
        files[target] = (text[:match.start()] + hostile + text[match.end():]).encode()
    else:
        files[target] = draw(byte_mutations(files[target]))
    return files


@pytest.mark.parametrize("name", ["cameras.json", "colmap bin", "colmap txt", "transforms.json"])
@FUZZ
@given(data=st.data())
def test_camera_files(tmp_path, name, data):
    """Cameras read, or one line naming the file (or its folder), or a budget refusal."""
    from blender_gsseg.core.files.camera_files import load_cameras

    folder = tmp_path / "cameras"
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for file_name, content in data.draw(camera_edits(name)).items():
        (folder / file_name).write_bytes(content)
    cameras = read_or_refuse(lambda: load_cameras(folder), folder, budget_names_it=False)
    for camera in cameras or ():  # usable cameras: finite poses and intrinsics, a real image size
        assert np.isfinite(camera.world_to_camera).all() and camera.width > 0 and camera.height > 0
        assert all(np.isfinite(v) for v in (camera.fx, camera.fy, camera.cx, camera.cy))


@functools.lru_cache(maxsize=None)
def _mask_seed():
    from PIL import Image

    labels = (np.arange(24 * 16).reshape(16, 24) // 40).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(labels, "L").save(out, format="PNG")
    return out.getvalue()


@FUZZ
@given(data=st.data())
def test_mask_images(tmp_path, data):
    """A damaged label PNG decodes to labels, or is refused in one line naming it."""
    from blender_gsseg.core.files.masks import read_label_image

    path = tmp_path / "lift_000.png"
    path.write_bytes(data.draw(byte_mutations(_mask_seed())))
    labels = read_or_refuse(lambda: read_label_image(path), path, budget_names_it=False)
    assert labels is None or labels.ndim == 2
