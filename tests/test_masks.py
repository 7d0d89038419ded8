"""Mask loading: matching masks to cameras, decoding binary/label/palette/colour masks, resizing, errors.

Every fixture is written here with Pillow into tmp_path; expected label maps are spelled out by hand.
"""

import os
import warnings

import numpy as np
import pytest
from PIL import Image

from blender_gsseg.core.cameras import Camera
from blender_gsseg.core.errors import BadInputError
from blender_gsseg.core.files.masks import MaskSet, label_index_maps, load_masks


def camera(name, width=4, height=3):
    return Camera(world_to_camera=np.eye(4), fx=10.0, fy=10.0, cx=width / 2, cy=height / 2,
                  width=width, height=height, image_name=name)


def save(folder, rel, array, mode=None, **params):
    """Write ``array`` as an image at folder/rel (creating folders); return the path."""
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    image.save(path, **params)
    return path


def mode_of(path):
    with Image.open(path) as image:
        return image.mode


def read_back(path):
    with Image.open(path) as image:
        return np.asarray(image)


def load_quiet(*args, **kwargs):
    """load_masks with warnings turned into errors, so a test that expects none fails if one is raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return load_masks(*args, **kwargs)


# --- decoding ---------------------------------------------------------------------------------------------


def test_binary_0_255_mask_becomes_label_1(tmp_path):
    mask = np.array([[0, 255, 255, 0], [0, 0, 255, 0], [255, 0, 0, 0]], dtype=np.uint8)
    save(tmp_path, "IMG_0001.png", mask)
    result = load_quiet(tmp_path, [camera("IMG_0001.jpg")])
    assert isinstance(result, MaskSet)
    assert result.camera_indices == [0]
    assert result.kinds == ["binary"]
    expected = np.array([[0, 1, 1, 0], [0, 0, 1, 0], [1, 0, 0, 0]], dtype=np.int32)
    assert result.label_maps[0].dtype == np.int32
    np.testing.assert_array_equal(result.label_maps[0], expected)
    np.testing.assert_array_equal(result.label_ids, [0, 1])
    assert result.label_ids.dtype == np.int32
    assert result.color_map == {}
    assert result.unmatched_masks == []
    assert result.files == [os.path.join(str(tmp_path), "IMG_0001.png")]


def test_all_white_binary_mask_is_label_1_and_all_black_is_background(tmp_path):
    save(tmp_path, "a.png", np.full((3, 4), 255, np.uint8))
    save(tmp_path, "b.png", np.zeros((3, 4), np.uint8))
    result = load_quiet(tmp_path, [camera("a.jpg"), camera("b.jpg")])
    np.testing.assert_array_equal(result.label_maps[0], np.ones((3, 4)))
    np.testing.assert_array_equal(result.label_maps[1], np.zeros((3, 4)))
    assert result.kinds == ["binary", "labels"]
    np.testing.assert_array_equal(result.label_ids, [0, 1])


def test_one_bit_mask(tmp_path):
    bits = np.array([[True, False, False, True]] * 3)
    save(tmp_path, "m.png", bits)
    assert mode_of(tmp_path / "m.png") == "1"
    result = load_quiet(tmp_path, [camera("m.png")])
    np.testing.assert_array_equal(result.label_maps[0], bits.astype(np.int32))


def test_8bit_label_map_keeps_ids(tmp_path):
    mask = np.array([[0, 3, 3, 7], [0, 0, 7, 7], [12, 0, 0, 0]], dtype=np.uint8)
    save(tmp_path, "v.png", mask)
    result = load_quiet(tmp_path, [camera("v.png")])
    assert result.kinds == ["labels"]
    np.testing.assert_array_equal(result.label_maps[0], mask.astype(np.int32))
    np.testing.assert_array_equal(result.label_ids, [0, 3, 7, 12])


def test_8bit_map_with_255_and_other_labels_is_a_label_map(tmp_path):
    mask = np.array([[0, 1, 255, 0]] * 3, dtype=np.uint8)
    save(tmp_path, "v.png", mask)
    result = load_quiet(tmp_path, [camera("v.png")])
    np.testing.assert_array_equal(result.label_maps[0], mask.astype(np.int32))
    np.testing.assert_array_equal(result.label_ids, [0, 1, 255])


def test_16bit_label_map_keeps_ids_above_255(tmp_path):
    mask = np.array([[0, 300, 300, 1000], [65534, 0, 2, 2], [0, 0, 0, 300]], dtype=np.uint16)
    save(tmp_path, "v.png", mask)
    assert mode_of(tmp_path / "v.png").startswith("I")
    result = load_quiet(tmp_path, [camera("v.png")])
    np.testing.assert_array_equal(result.label_maps[0], mask.astype(np.int32))
    np.testing.assert_array_equal(result.label_ids, [0, 2, 300, 1000, 65534])


@pytest.mark.parametrize("top", [255, 65535])
def test_16bit_binary_mask(tmp_path, top):
    mask = np.array([[0, top, 0, 0]] * 3, dtype=np.uint16)
    save(tmp_path, "v.png", mask)
    result = load_quiet(tmp_path, [camera("v.png")])
    assert result.kinds == ["binary"]
    np.testing.assert_array_equal(result.label_maps[0], np.array([[0, 1, 0, 0]] * 3))


def test_32bit_tiff_label_map(tmp_path):
    mask = np.array([[0, 70000, 5, 0]] * 3, dtype=np.int32)
    save(tmp_path, "v.tif", mask)
    result = load_quiet(tmp_path, [camera("v.png")])
    np.testing.assert_array_equal(result.label_maps[0], mask)
    np.testing.assert_array_equal(result.label_ids, [0, 5, 70000])


def test_palette_png_uses_the_index_not_the_colour(tmp_path):
    indices = np.array([[0, 2, 2, 1], [0, 0, 5, 1], [0, 0, 0, 0]], dtype=np.uint8)
    image = Image.fromarray(indices, "P")
    # Colours chosen so that sorting them would give a different numbering than the indices.
    palette = [0, 0, 0, 255, 255, 255, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3] + [0] * (3 * 250)
    image.putpalette(palette)
    image.save(tmp_path / "p.png")
    assert mode_of(tmp_path / "p.png") == "P"
    result = load_quiet(tmp_path, [camera("p.jpg")])
    assert result.kinds == ["palette"]
    np.testing.assert_array_equal(result.label_maps[0], indices.astype(np.int32))
    np.testing.assert_array_equal(result.label_ids, [0, 1, 2, 5])
    assert result.color_map == {}


def rgb(rows):
    """[[0xRRGGBB, ...], ...] -> uint8 [H, W, 3]."""
    packed = np.array(rows, dtype=np.uint32)
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1).astype(np.uint8)


def test_rgb_masks_share_one_colour_table_across_views(tmp_path):
    red, green, blue = 0xFF0000, 0x00FF00, 0x0000FF
    view_a = [[0, red, red, green], [0, 0, green, green], [0, 0, 0, 0]]
    view_b = [[blue, 0, 0, red], [blue, 0, 0, red], [0, 0, 0, 0]]
    save(tmp_path, "a.png", rgb(view_a))
    save(tmp_path, "b.png", rgb(view_b))
    result = load_quiet(tmp_path, [camera("a.jpg"), camera("b.jpg")])
    # Ascending 0xRRGGBB: blue (0x0000ff) -> 1, green (0x00ff00) -> 2, red (0xff0000) -> 3.
    assert result.color_map == {"#0000ff": 1, "#00ff00": 2, "#ff0000": 3}
    assert result.kinds == ["color", "color"]
    np.testing.assert_array_equal(result.label_maps[0], [[0, 3, 3, 2], [0, 0, 2, 2], [0, 0, 0, 0]])
    np.testing.assert_array_equal(result.label_maps[1], [[1, 0, 0, 3], [1, 0, 0, 3], [0, 0, 0, 0]])
    assert all(m.dtype == np.int32 for m in result.label_maps)
    np.testing.assert_array_equal(result.label_ids, [0, 1, 2, 3])


def test_rgb_mask_with_many_colours_matches_a_reference_numbering(tmp_path):
    # Enough distinct colours that the sampled colour table misses some and has to be completed.
    rng = np.random.default_rng(7)
    colours = rng.integers(1, 1 << 24, size=(40, 50), dtype=np.uint32)
    colours[rng.random((40, 50)) < 0.3] = 0
    save(tmp_path, "a.png", rgb(colours))
    result = load_quiet(tmp_path, [camera("a.png", width=50, height=40)])
    table = np.unique(colours[colours != 0])
    expected = np.zeros(colours.shape, np.int32)
    for number, colour in enumerate(table, start=1):
        expected[colours == colour] = number
    np.testing.assert_array_equal(result.label_maps[0], expected)
    assert len(result.color_map) == len(table)
    assert result.color_map[f"#{int(table[-1]):06x}"] == len(table)


def test_rgba_transparent_pixels_are_background(tmp_path):
    pixels = np.zeros((3, 4, 4), np.uint8)
    pixels[..., :3] = rgb([[0xFFFFFF, 0x00FF00, 0xFFFFFF, 0]] * 3)
    pixels[..., 3] = [[0, 255, 255, 255]] * 3  # the first column is white but fully transparent
    save(tmp_path, "a.png", pixels, "RGBA")
    result = load_quiet(tmp_path, [camera("a.jpg")])
    assert result.color_map == {"#00ff00": 1, "#ffffff": 2}
    np.testing.assert_array_equal(result.label_maps[0], [[0, 1, 2, 0]] * 3)


def test_ignore_label_on_a_label_map(tmp_path):
    mask = np.array([[0, 1, 255, 0], [2, 2, 255, 1], [0, 0, 0, 0]], dtype=np.uint8)
    save(tmp_path, "v.png", mask)
    result = load_quiet(tmp_path, [camera("v.png")], ignore_label=255)
    np.testing.assert_array_equal(result.label_maps[0], [[0, 1, -1, 0], [2, 2, -1, 1], [0, 0, 0, 0]])
    np.testing.assert_array_equal(result.label_ids, [0, 1, 2])


def test_ignore_label_applies_to_decoded_values(tmp_path):
    # Binary masks decode 255 -> 1, so ignore_label=1 ignores their foreground; colour ids are ignorable too.
    save(tmp_path, "a.png", np.array([[0, 255, 255, 0]] * 3, np.uint8))
    save(tmp_path, "b.png", rgb([[0, 0x0000FF, 0xFF0000, 0]] * 3))
    with pytest.warns(UserWarning, match="share one number space"):
        result = load_masks(tmp_path, [camera("a.png"), camera("b.png")], ignore_label=1)
    np.testing.assert_array_equal(result.label_maps[0], [[0, -1, -1, 0]] * 3)
    np.testing.assert_array_equal(result.label_maps[1], [[0, -1, 2, 0]] * 3)
    np.testing.assert_array_equal(result.label_ids, [0, 2])


def test_ignore_label_zero_ignores_background(tmp_path):
    save(tmp_path, "v.png", np.array([[0, 4, 4, 0]] * 3, np.uint8))
    result = load_quiet(tmp_path, [camera("v.png")], ignore_label=0)
    np.testing.assert_array_equal(result.label_maps[0], [[-1, 4, 4, -1]] * 3)
    np.testing.assert_array_equal(result.label_ids, [0, 4])  # 0 is always listed


def test_ignore_colour_gets_no_id(tmp_path):
    save(tmp_path, "a.png", rgb([[0, 0x0000FF, 0xFF00FF, 0xFF0000]] * 3))
    result = load_quiet(tmp_path, [camera("a.png")], ignore_label="#ff00ff")
    assert result.color_map == {"#0000ff": 1, "#ff0000": 2}
    np.testing.assert_array_equal(result.label_maps[0], [[0, 1, -1, 2]] * 3)


def test_bad_ignore_label(tmp_path):
    save(tmp_path, "v.png", np.zeros((3, 4), np.uint8))
    with pytest.raises(BadInputError, match="ignore label"):
        load_masks(tmp_path, [camera("v.png")], ignore_label="void")
    with pytest.raises(BadInputError, match="ignore label"):
        load_masks(tmp_path, [camera("v.png")], ignore_label=2**40)
    with pytest.raises(BadInputError, match="ignore label"):
        load_masks(tmp_path, [camera("v.png")], ignore_label=1.5)
    result = load_quiet(tmp_path, [camera("v.png")], ignore_label="0")  # the CLI passes strings
    assert (result.label_maps[0] == -1).all()


def test_mixed_kinds_are_decided_per_image(tmp_path):
    save(tmp_path, "a.png", np.array([[0, 255, 0, 0]] * 3, np.uint8))
    save(tmp_path, "b.png", np.array([[0, 9, 4, 0]] * 3, np.uint8))
    result = load_quiet(tmp_path, [camera("a.png"), camera("b.png")])
    assert result.kinds == ["binary", "labels"]
    np.testing.assert_array_equal(result.label_maps[0], [[0, 1, 0, 0]] * 3)
    np.testing.assert_array_equal(result.label_maps[1], [[0, 9, 4, 0]] * 3)
    np.testing.assert_array_equal(result.label_ids, [0, 1, 4, 9])


def test_jpeg_binary_mask_is_thresholded(tmp_path):
    # JPEG is lossy: its grey levels near edges are not 0/255, so JPEG masks are read as binary (>= 128).
    mask = np.zeros((24, 32), np.uint8)
    mask[5:13, 3:21] = 255  # edges off the 8x8 JPEG blocks, so the file gets ringing artefacts
    save(tmp_path, "v.jpg", mask, quality=90)
    decoded = read_back(tmp_path / "v.jpg")
    assert len(np.unique(decoded)) > 2  # the fixture really has JPEG artefacts
    result = load_quiet(tmp_path, [camera("v.png", width=32, height=24)])
    assert result.kinds == ["binary"]
    np.testing.assert_array_equal(result.label_maps[0], (mask == 255).astype(np.int32))
    np.testing.assert_array_equal(result.label_ids, [0, 1])


def test_grey_rgb_jpeg_is_binary_but_colour_jpeg_is_refused(tmp_path):
    mask = np.zeros((24, 32, 3), np.uint8)
    mask[5:13, 3:21] = 255
    save(tmp_path / "grey", "v.jpg", mask, quality=90)
    result = load_quiet(tmp_path / "grey", [camera("v.png", width=32, height=24)])
    np.testing.assert_array_equal(result.label_maps[0], (mask[..., 0] == 255).astype(np.int32))
    mask[5:13, 3:21] = (255, 0, 0)
    save(tmp_path / "colour", "v.jpg", mask, quality=90)
    with pytest.raises(BadInputError, match=r"v\.jpg.*lossy"):
        load_masks(tmp_path / "colour", [camera("v.png", width=32, height=24)])


# --- matching ---------------------------------------------------------------------------------------------


def marker(value):
    """A 3x4 label map filled with ``value``, so a test can tell which file a view got."""
    return np.full((3, 4), value, np.uint8)


def test_matching_by_relative_path_beats_stem(tmp_path):
    save(tmp_path, "cam0/IMG.png", marker(10))
    save(tmp_path, "cam1/IMG.png", marker(11))
    save(tmp_path, "IMG.png", marker(12))
    cameras = [camera("cam1/IMG.jpg"), camera("cam0/IMG.jpg"), camera("IMG.JPG")]
    result = load_quiet(tmp_path, cameras)
    assert result.camera_indices == [0, 1, 2]
    assert [int(m[0, 0]) for m in result.label_maps] == [11, 10, 12]
    assert result.files == [os.path.join(str(tmp_path), "cam1", "IMG.png"),
                            os.path.join(str(tmp_path), "cam0", "IMG.png"),
                            os.path.join(str(tmp_path), "IMG.png")]


def test_matching_by_stem(tmp_path):
    save(tmp_path, "IMG_0001.png", marker(1))
    save(tmp_path, "sub/IMG_0002.tif", marker(2))
    cameras = [camera("images/IMG_0002.jpg"), camera("images/IMG_0001.jpg")]
    result = load_quiet(tmp_path, cameras)
    assert [int(m[0, 0]) for m in result.label_maps] == [2, 1]


def test_camera_names_are_normalised(tmp_path):
    save(tmp_path, "train/r_0.png", marker(3))
    save(tmp_path, "frame.001.png", marker(4))
    save(tmp_path, "images/a.png", marker(5))
    # transforms.json style (no extension, './'), a dotted name without extension, Windows separators.
    cameras = [camera("./train/r_0"), camera("frame.001"), camera("images\\a.jpg")]
    result = load_quiet(tmp_path, cameras)
    assert [int(m[0, 0]) for m in result.label_maps] == [3, 4, 5]


def test_stem_match_ignores_case_as_a_last_resort(tmp_path):
    save(tmp_path, "img_0001.png", marker(8))
    save(tmp_path, "IMG_0002.png", marker(9))
    save(tmp_path, "img_0002.png", marker(10))
    result = load_quiet(tmp_path, [camera("images/IMG_0001.JPG"), camera("images/IMG_0002.JPG")])
    # IMG_0002 has an exact-case stem match, which wins over the case-folded one.
    assert [int(m[0, 0]) for m in result.label_maps] == [8, 9]
    assert result.unmatched_masks == ["img_0002.png"]


def test_stem_match_prefers_more_shared_folders(tmp_path):
    save(tmp_path, "cam0/A.png", marker(20))
    save(tmp_path, "cam1/A.png", marker(21))
    result = load_quiet(tmp_path, [camera("/data/scene/images/cam1/A.jpg")])
    assert int(result.label_maps[0][0, 0]) == 21
    assert result.unmatched_masks == ["cam0/A.png"]


def test_stem_does_not_reuse_a_mask_claimed_by_relative_path(tmp_path):
    save(tmp_path, "cam0/IMG.png", marker(10))
    with pytest.warns(UserWarning, match=r"1 of 2 cameras have no mask.*cam1/IMG\.jpg"):
        result = load_masks(tmp_path, [camera("cam0/IMG.jpg"), camera("cam1/IMG.jpg")])
    assert result.camera_indices == [0]


def test_ambiguous_stem_is_an_error_naming_both(tmp_path):
    save(tmp_path, "a/IMG_0001.png", marker(1))
    save(tmp_path, "b/IMG_0001.png", marker(2))
    with pytest.raises(BadInputError, match=r"IMG_0001\.jpg.*'a/IMG_0001\.png' and 'b/IMG_0001\.png'"):
        load_masks(tmp_path, [camera("images/IMG_0001.jpg")])


def test_two_files_with_the_same_path_but_different_extensions_is_an_error(tmp_path):
    save(tmp_path, "IMG.png", marker(1))
    save(tmp_path, "IMG.tif", marker(2))
    with pytest.raises(BadInputError, match=r"'IMG\.png' and 'IMG\.tif'"):
        load_masks(tmp_path, [camera("IMG.jpg")])


def test_one_mask_for_two_cameras_by_stem_is_an_error(tmp_path):
    save(tmp_path, "IMG.png", marker(1))
    with pytest.raises(BadInputError, match=r"'IMG\.png'.*'cam0/IMG\.jpg' and 'cam1/IMG\.jpg'"):
        load_masks(tmp_path, [camera("cam0/IMG.jpg"), camera("cam1/IMG.jpg")])


def test_cameras_without_masks_are_skipped_with_one_warning(tmp_path):
    save(tmp_path, "c.png", marker(7))
    cameras = [camera(f"{name}.jpg") for name in "abcdefgh"]
    with pytest.warns(UserWarning) as record:
        result = load_masks(tmp_path, cameras)
    messages = [str(w.message) for w in record]
    assert len(messages) == 1
    assert "7 of 8 cameras" in messages[0]
    assert "a.jpg, b.jpg, d.jpg, e.jpg, f.jpg, ... (2 more)" in messages[0]
    assert result.camera_indices == [2]
    assert int(result.label_maps[0][0, 0]) == 7


def test_masks_without_cameras_are_reported(tmp_path):
    save(tmp_path, "a.png", marker(1))
    save(tmp_path, "extra/z.png", marker(2))
    save(tmp_path, "y.bmp", marker(3))
    (tmp_path / "notes.txt").write_text("not a mask")
    save(tmp_path, ".hidden.png", marker(4))
    result = load_quiet(tmp_path, [camera("a.jpg")])
    assert result.unmatched_masks == ["extra/z.png", "y.bmp"]


def test_no_match_at_all_is_an_error(tmp_path):
    save(tmp_path, "a.png", marker(1))
    with pytest.raises(BadInputError, match="no mask matches any camera"):
        load_masks(tmp_path, [camera("b.jpg"), camera("c.jpg")])


def test_missing_or_empty_folder_is_an_error(tmp_path):
    with pytest.raises(BadInputError, match="no such folder"):
        load_masks(tmp_path / "nope", [camera("a.jpg")])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("")
    with pytest.raises(BadInputError, match="no mask images"):
        load_masks(tmp_path / "empty", [camera("a.jpg")])


# --- resizing ---------------------------------------------------------------------------------------------


def test_resize_to_a_smaller_working_size_by_nearest_neighbour(tmp_path):
    # 5x4 -> 3x2: columns floor((x + 0.5) * 5 / 3) = 0, 2, 4; rows floor((y + 0.5) * 4 / 2) = 1, 3.
    mask = np.array([[1, 2, 3, 4, 5],
                     [6, 7, 8, 9, 10],
                     [11, 12, 13, 14, 15],
                     [16, 17, 18, 19, 20]], dtype=np.uint8)
    save(tmp_path, "v.png", mask)
    result = load_quiet(tmp_path, [camera("v.png", width=5, height=4)], sizes=[(3, 2)])
    np.testing.assert_array_equal(result.label_maps[0], [[6, 8, 10], [16, 18, 20]])
    np.testing.assert_array_equal(result.label_ids, [0, 6, 8, 10, 16, 18, 20])  # only what survives


def test_resize_up_does_not_blend_16bit_labels(tmp_path):
    # 2x2 -> 5x3: columns floor((x + 0.5) * 2 / 5) = 0, 0, 1, 1, 1; rows floor((y + 0.5) * 2 / 3) = 0, 1, 1.
    mask = np.array([[300, 65000], [7, 0]], dtype=np.uint16)
    save(tmp_path, "v.png", mask)
    result = load_quiet(tmp_path, [camera("v.png", width=2, height=2)], sizes=[(5, 3)])
    np.testing.assert_array_equal(result.label_maps[0], [[300, 300, 65000, 65000, 65000],
                                                          [7, 7, 0, 0, 0],
                                                          [7, 7, 0, 0, 0]])


def test_mask_of_another_size_than_its_camera_is_warned_once_and_resized(tmp_path):
    # Half-resolution masks for 4x2 cameras: 2x1 -> 4x2 repeats each pixel.
    save(tmp_path, "a.png", np.array([[0, 255]], np.uint8))
    save(tmp_path, "b.png", np.array([[5, 6]], np.uint8))
    cameras = [camera("a.jpg", width=4, height=2), camera("b.jpg", width=4, height=2)]
    with pytest.warns(UserWarning) as record:
        result = load_masks(tmp_path, cameras)
    messages = [str(w.message) for w in record]
    assert len(messages) == 1 and messages[0].startswith("2 masks differ in size")
    assert "a.png (2x1, camera 4x2)" in messages[0]
    np.testing.assert_array_equal(result.label_maps[0], [[0, 0, 1, 1], [0, 0, 1, 1]])
    np.testing.assert_array_equal(result.label_maps[1], [[5, 5, 6, 6], [5, 5, 6, 6]])


def test_colour_masks_are_resized_before_numbering(tmp_path):
    # 4x1 -> 2x1 keeps columns 1 and 3: the colours of columns 0 and 2 vanish and get no id.
    save(tmp_path, "a.png", rgb([[0x111111, 0x00FF00, 0x222222, 0xFF0000]]))
    result = load_quiet(tmp_path, [camera("a.png", width=4, height=1)], sizes=[(2, 1)])
    assert result.color_map == {"#00ff00": 1, "#ff0000": 2}
    np.testing.assert_array_equal(result.label_maps[0], [[1, 2]])


def test_sizes_must_match_cameras(tmp_path):
    save(tmp_path, "a.png", marker(1))
    with pytest.raises(ValueError):
        load_masks(tmp_path, [camera("a.png")], sizes=[(4, 3), (4, 3)])


# --- bad files and limits -----------------------------------------------------------------------------------


def test_unreadable_mask_is_an_error_naming_the_file(tmp_path):
    (tmp_path / "a.png").write_bytes(b"this is not a png")
    with pytest.raises(BadInputError, match=r"a\.png: cannot read the mask image"):
        load_masks(tmp_path, [camera("a.jpg")])


def test_truncated_mask_is_an_error_naming_the_file(tmp_path):
    rng = np.random.default_rng(0)
    path = save(tmp_path, "a.png", rng.integers(0, 256, (64, 64), dtype=np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError, match=r"a\.png: cannot read"):
        load_masks(tmp_path, [camera("a.jpg", width=64, height=64)])


def test_unmatched_corrupt_files_are_not_read(tmp_path):
    save(tmp_path, "a.png", marker(1))
    (tmp_path / "junk.png").write_bytes(b"junk")
    result = load_quiet(tmp_path, [camera("a.jpg")])
    assert result.unmatched_masks == ["junk.png"]


def test_more_than_65535_labels_is_an_error(tmp_path):
    save(tmp_path, "a.png", np.arange(65536, dtype=np.uint16).reshape(256, 256))
    with pytest.raises(BadInputError, match="65536 distinct labels"):
        load_masks(tmp_path, [camera("a.png", width=256, height=256)])


# --- label index maps ------------------------------------------------------------------------------------


def test_label_index_maps(tmp_path):
    save(tmp_path, "a.png", np.array([[0, 300, 7, 255]] * 2, np.uint16))
    save(tmp_path, "b.png", np.array([[7, 7, 0, 300]] * 2, np.uint16))
    cameras = [camera("a.png", width=4, height=2), camera("b.png", width=4, height=2)]
    result = load_quiet(tmp_path, cameras, ignore_label=255)
    np.testing.assert_array_equal(result.label_ids, [0, 7, 300])
    index_maps = label_index_maps(result)
    assert [m.dtype for m in index_maps] == [np.int16, np.int16]
    np.testing.assert_array_equal(index_maps[0], [[0, 2, 1, -1]] * 2)
    np.testing.assert_array_equal(index_maps[1], [[1, 1, 0, 2]] * 2)
    wide = label_index_maps(result, dtype=np.int32)
    assert wide[0].dtype == np.int32
    np.testing.assert_array_equal(wide[0], index_maps[0])


def test_label_index_maps_with_large_ids():
    maps = [np.array([[0, 5_000_000, -1, 3]], np.int32)]
    mask_set = MaskSet(camera_indices=[0], label_maps=maps, label_ids=np.array([0, 3, 5_000_000], np.int32),
                       color_map={}, unmatched_masks=[], files=["x.png"])
    np.testing.assert_array_equal(label_index_maps(mask_set)[0], [[0, 2, -1, 1]])
