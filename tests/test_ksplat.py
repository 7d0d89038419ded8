"""GaussianSplats3D's .ksplat (read only): files its own library wrote, decoded as splat-transform 3.7.0 decodes them
(fixtures in tests/data/splat_transform_3.7.0/, made as its README says)."""

import os

import numpy as np
import pytest

from blender_gsseg.cli import main
from blender_gsseg.core.files.quantize import sigmoid64
from blender_gsseg.core.files.splats import read_gaussians
from test_formats import quat_angle

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "splat_transform_3.7.0")
SOURCE = os.path.join(DATA, "source_sh3.ply")


@pytest.mark.parametrize("name", ["gs3d_sh2_l0", "gs3d_sh2_l2", "gs3d_sh1_300_l1"])
def test_reads_ksplat_as_splat_transform_decodes_it(name):
    """GaussianSplats3D 0.4.7 wrote these (compression levels 0, 1 and 2; SH bands 1-2): our decoding is
    splat-transform's own, bit for bit."""
    ours = read_gaussians(os.path.join(DATA, f"{name}.ksplat"))
    theirs = read_gaussians(os.path.join(DATA, f"{name}.ksplat.st.ply"))
    assert sorted(ours.property_names) == sorted(theirs.property_names) and len(ours) == len(theirs)
    assert ours.sh_degree == theirs.sh_degree == (1 if "sh1" in name else 2)
    for prop in theirs.property_names:
        assert ours.vertex[prop].tobytes() == theirs.vertex[prop].tobytes(), prop


def test_ksplat_of_floats_is_the_source():
    """Level 0 keeps float32 positions, scales, quaternions and SH: matched by position, each splat of the file
    is the source's (GaussianSplats3D dropped the one splat whose alpha is 0), SH bands 1-2 exactly, the base
    colour within its 8-bit step."""
    source = read_gaussians(SOURCE).with_sh_degree(2)
    ksplat = read_gaussians(os.path.join(DATA, "gs3d_sh2_l0.ksplat"))
    where = {tuple(p): i for i, p in enumerate(source.means.tolist())}
    match = source.subset(np.array([where[tuple(p)] for p in ksplat.means.tolist()]))
    assert len(ksplat) == len(source) - 1 and (sigmoid64(source.vertex["opacity"]) < 1 / 255).sum() == 1
    np.testing.assert_array_equal(ksplat.sh_rest, match.sh_rest)
    np.testing.assert_allclose(ksplat.vertex["scale_0"], match.vertex["scale_0"], rtol=0, atol=1e-6)
    assert quat_angle(ksplat.rotations.astype(np.float64), match.rotations.astype(np.float64)).max() < 1e-3
    assert np.abs(ksplat.sh_dc - match.sh_dc).max() <= 1 / 255 / 0.28209479177387814 + 1e-6


def test_a_damaged_ksplat_is_one_clear_line(tmp_path, capsys):
    import struct

    good = open(os.path.join(DATA, "gs3d_sh1_300_l1.ksplat"), "rb").read()

    def patched(offset, fmt, value):
        data = bytearray(good)
        struct.pack_into(fmt, data, offset, value)
        return bytes(data)

    cases = {"small.ksplat": (good[:1000], "too small to be a .ksplat file"),
             "level.ksplat": (patched(20, "<H", 7), "unknown .ksplat compression level 7"),
             "cut.ksplat": (good[:len(good) - 600], "damaged .ksplat file"),
             # counts that would allocate gigabytes if believed: checked against the sections and the file first
             "count.ksplat": (patched(16, "<I", 0xFFFFFFF0), "header says 4294967280 splats, its sections hold 299"),
             "section.ksplat": (patched(4096, "<I", 0xFFFFFFF0), "header says 299 splats, its sections hold")}
    for name, (data, phrase) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert main(["info", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"gsseg: error: {tmp_path / name}: ") and phrase in err and "\n" not in err, err
    # a partial bucket claiming 2^32 - 1 splats: its splats are placed by cumulative sizes, nothing is expanded
    (tmp_path / "bucket.ksplat").write_bytes(patched(4096 + 1024, "<I", 0xFFFFFFFF))
    assert len(read_gaussians(tmp_path / "bucket.ksplat")) == 299
