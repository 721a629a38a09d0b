"""Composites keep the photo's colour profile and EXIF; mask files stay plain.

Inputs are real photographs saved the way phones and editors save them: a Display P3 profile
(built here from Pillow's sRGB profile with P3's primaries), EXIF with camera, lens, date, GPS
and orientation 6 (pixels stored on their side). Results are read back with Pillow, as a
viewer or an uploader reads them.
"""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from segtool.io import ImageFacts, read_image, read_image_and_facts, write_image
from segtool.io.images import _orientation_reset
from segtool_process import model_env, run_segtool  # noqa: F401  (model_env is a fixture)

skimage_data = pytest.importorskip("skimage.data")

MAKE, MODEL, ORIENTATION, EXIF_IFD, GPS_IFD = 0x010F, 0x0110, 0x0112, 0x8769, 0x8825
DATE_TAKEN, LENS = 0x9003, 0xA434
# Display P3's colorants, adapted to the ICC's D50 white (as Apple's profile states them).
P3_COLORANTS = {b"rXYZ": (0.5151, 0.2412, -0.0011), b"gXYZ": (0.2920, 0.6922, 0.0419),
                b"bXYZ": (0.1571, 0.0666, 0.7841)}


def display_p3_profile() -> bytes:
    """Pillow's sRGB profile with its primaries moved to Display P3's: a real, wider RGB space."""
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    profile[84:100] = bytes(16)  # the profile ID (an MD5 of the content) no longer applies
    (count,) = struct.unpack_from(">I", profile, 128)
    for entry in range(132, 132 + 12 * count, 12):
        signature, offset, _ = struct.unpack_from(">4sII", profile, entry)
        if signature in P3_COLORANTS:
            values = [round(v * 65536) for v in P3_COLORANTS[signature]]
            struct.pack_into(">3i", profile, offset + 8, *values)
    return bytes(profile)


P3 = display_p3_profile()


def phone_exif(orientation: int = 6) -> Image.Exif:
    exif = Image.Exif()
    exif[MAKE], exif[MODEL], exif[ORIENTATION] = "Apple", "iPhone 15 Pro", orientation
    exif.get_ifd(EXIF_IFD).update({DATE_TAKEN: "2024:05:06 07:08:09", LENS: "iPhone 15 Pro back camera 6.86mm f/1.78"})
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (51.0, 30.0, 26.5), 3: "W", 4: (0.0, 7.0, 39.0)})
    return exif


def upright_photo() -> np.ndarray:
    return skimage_data.astronaut()


def save_as_phone(path, upright: np.ndarray, fmt: str) -> None:
    # Orientation 6: stored turned a quarter anticlockwise; a viewer turns it back clockwise.
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, k=1)))
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    stored.save(path, format=fmt, icc_profile=P3, exif=phone_exif().tobytes(), **options)


def assert_keeps_the_facts(path, upright_shape) -> None:
    with Image.open(path) as picture:
        assert picture.info.get("icc_profile") == P3
        exif = picture.getexif()
        assert (exif[MAKE], exif[MODEL]) == ("Apple", "iPhone 15 Pro")
        assert exif.get(ORIENTATION, 1) == 1  # the pixels are upright already
        assert exif.get_ifd(EXIF_IFD)[DATE_TAKEN] == "2024:05:06 07:08:09"
        assert exif.get_ifd(EXIF_IFD)[LENS].startswith("iPhone 15 Pro")
        gps = exif.get_ifd(GPS_IFD)
        assert (gps[1], tuple(map(float, gps[2])), gps[3]) == ("N", (51.0, 30.0, 26.5), "W")
        # A viewer honouring EXIF shows the composite the way it shows the photo: upright.
        assert np.asarray(ImageOps.exif_transpose(picture)).shape[:2] == upright_shape[:2]


def assert_plain(path) -> None:
    with Image.open(path) as picture:
        assert "icc_profile" not in picture.info
        # (a TIFF's own layout tags are EXIF-shaped too; none of the photo's facts may be there)
        assert not {MAKE, MODEL, ORIENTATION, EXIF_IFD, GPS_IFD} & set(picture.getexif())


@pytest.fixture
def phone_photos(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    upright = upright_photo()
    for name, fmt in (("jpeg.jpg", "JPEG"), ("png.png", "PNG"), ("webp.webp", "WEBP"), ("tiff.tif", "TIFF")):
        save_as_phone(folder / name, upright, fmt)
    return folder, upright


COMPOSITE_FLAGS = ["--blur", "--replace-bg", "green", "--cutout", "--recolor-hair", "red", "--classes", "person",
                   "--alpha-mask"]


@pytest.mark.parametrize("engine", [[], ["--batch-size", "3"]], ids=["one-by-one", "batched"])
def test_composites_keep_profile_and_exif_with_orientation_reset(phone_photos, tmp_path, model_env, engine):
    folder, upright = phone_photos
    out = tmp_path / "out"
    done = run_segtool(["image", folder, "--category-mask", *COMPOSITE_FLAGS, *engine, "-o", out], model_env)
    assert done.returncode == 0, done.stderr.decode()
    for stem, ext in (("jpeg", ".jpg"), ("png", ".png"), ("webp", ".webp"), ("tiff", ".tif")):
        for composite in ("blur", "replace", "recolor"):
            assert_keeps_the_facts(out / f"{stem}.{composite}{ext}", upright.shape)
        assert_keeps_the_facts(out / f"{stem}.cutout.png", upright.shape)
        assert_plain(out / f"{stem}.category.png")
        assert_plain(out / f"{stem}.alpha.png")
        assert read_image(out / f"{stem}.blur{ext}").shape == upright.shape


@pytest.mark.parametrize("fmt", ["jpg", "webp", "png"])
def test_a_composite_format_override_keeps_them_too(phone_photos, tmp_path, model_env, fmt):
    folder, upright = phone_photos
    out = tmp_path / "out"
    done = run_segtool(["image", folder / "jpeg.jpg", "--blur", "--composite-format", fmt, "-o", out], model_env)
    assert done.returncode == 0, done.stderr.decode()
    assert_keeps_the_facts(out / f"jpeg.blur.{fmt}", upright.shape)


def test_strip_metadata_leaves_composites_plain(phone_photos, tmp_path, model_env):
    folder, _ = phone_photos
    out = tmp_path / "out"
    done = run_segtool(["image", folder, "--blur", "--cutout", "--strip-metadata", "-o", out], model_env)
    assert done.returncode == 0, done.stderr.decode()
    composites = sorted(out.glob("*.blur.*")) + sorted(out.glob("*.cutout.*"))
    assert len(composites) == 8
    for path in composites:
        assert_plain(path)


def test_the_profile_means_what_it_says():
    """The P3 profile built above is a real, different colour space: its red is not sRGB's."""
    p3 = ImageCms.ImageCmsProfile(io.BytesIO(P3))
    srgb = ImageCms.createProfile("sRGB")
    red = ImageCms.profileToProfile(Image.new("RGB", (1, 1), (255, 0, 0)), p3, srgb)
    assert red.getpixel((0, 0))[1] == 0 and red.getpixel((0, 0))[0] == 255  # out of sRGB's gamut: clipped
    muted = ImageCms.profileToProfile(Image.new("RGB", (1, 1), (180, 60, 60)), p3, srgb).getpixel((0, 0))
    assert abs(muted[0] - 180) > 5


# ---- the io layer ----------------------------------------------------------------------------

@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_orientation_is_reset_in_place(order, orientation):
    exif = phone_exif(orientation)
    raw = exif.tobytes()[6:]
    if order == "<":  # Pillow writes big-endian; phones write both
        raw = _little_endian(exif)
    reset = _orientation_reset(raw)
    assert len(reset) == len(raw)
    assert sum(a != b for a, b in zip(raw, reset)) <= (0 if orientation == 1 else 1)
    parsed = Image.Exif()
    parsed.load(reset)
    assert parsed[ORIENTATION] == 1 and parsed[MAKE] == "Apple"


def _little_endian(exif: Image.Exif) -> bytes:
    from PIL import TiffImagePlugin

    ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=b"II\x2a\x00\x08\x00\x00\x00")
    for tag, value in exif.items():
        ifd[tag] = value
    return b"II\x2a\x00\x08\x00\x00\x00" + ifd.tobytes(8)


@pytest.mark.parametrize("damage", [b"", b"Exif\x00\x00", b"Exif\x00\x00XX\x00*", b"Exif\x00\x00MM\x00*\x00\x00\xff\xff"])
def test_damaged_exif_is_left_out(tmp_path, damage):
    path = tmp_path / "odd.jpg"
    Image.fromarray(upright_photo()).save(path, exif=damage, icc_profile=P3)
    facts = read_image_and_facts(path)[1]
    assert facts.exif is None and facts.icc_profile == P3
    assert read_image(path).shape == upright_photo().shape


def test_non_rgb_profiles_are_not_carried_onto_rgb_composites(tmp_path):
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    path = tmp_path / "lab-profile.png"
    Image.fromarray(upright_photo()).save(path, icc_profile=lab)
    assert read_image_and_facts(path)[1] == ImageFacts()


def test_untagged_photos_have_no_facts_and_give_plain_files(tmp_path):
    source = tmp_path / "plain.jpg"
    Image.fromarray(upright_photo()).save(source)
    facts = read_image_and_facts(source)[1]
    assert facts == ImageFacts()
    write_image(tmp_path / "copy.jpg", upright_photo(), facts=facts)
    assert_plain(tmp_path / "copy.jpg")


def test_bmp_cannot_carry_them_and_is_still_written(tmp_path):
    facts = ImageFacts(icc_profile=P3, exif=phone_exif(1).tobytes())
    write_image(tmp_path / "out.bmp", upright_photo(), facts=facts)
    assert np.array_equal(read_image(tmp_path / "out.bmp"), upright_photo())


# ---- print resolution ------------------------------------------------------------------------------

X_RESOLUTION, Y_RESOLUTION, RESOLUTION_UNIT = 0x011A, 0x011B, 0x0128


def jpeg_in_centimetres(path, dots_per_cm: int) -> None:
    """A JPEG whose JFIF density is in dots per centimetre (unit 2), as some scanners write it."""
    Image.fromarray(upright_photo()).save(path, dpi=(1, 1))
    data = bytearray(path.read_bytes())
    assert data[6:11] == b"JFIF\0"
    data[13] = 2
    struct.pack_into(">HH", data, 14, dots_per_cm, dots_per_cm)
    path.write_bytes(bytes(data))


def exif_resolution(x: float, y: float, unit: int = 2) -> bytes:
    exif = Image.Exif()
    exif[MAKE], exif[X_RESOLUTION], exif[Y_RESOLUTION], exif[RESOLUTION_UNIT] = "Scanner", x, y, unit
    return exif.tobytes()


def printed_photos(folder) -> dict[str, tuple[float, float]]:
    """Photos with a print resolution, each saved the way its source writes it: {name: dpi}."""
    folder.mkdir()
    photo = Image.fromarray(upright_photo())
    photo.save(folder / "jfif-300.jpg", dpi=(300, 300), quality=90)
    jpeg_in_centimetres(folder / "jfif-cm.jpg", 118)
    photo.save(folder / "phys-300x150.png", dpi=(300, 150))
    photo.save(folder / "tiff-300.tif", dpi=(300, 300))
    photo.save(folder / "tiff-cm.tif", resolution=118.11, resolution_unit=3, x_resolution=118.11, y_resolution=59.055)
    photo.save(folder / "exif-only.png", exif=exif_resolution(600, 600))
    photo.save(folder / "exif-cm.webp", exif=exif_resolution(120, 120, unit=3), quality=90)
    return {"jfif-300": (300, 300), "jfif-cm": (299.72, 299.72), "phys-300x150": (300, 150), "tiff-300": (300, 300),
            "tiff-cm": (300, 150), "exif-only": (600, 600), "exif-cm": (304.8, 304.8)}


def written_dpi(path) -> tuple[float, float]:
    """The resolution a reader finds: Pillow's ``info['dpi']``, or a WebP's EXIF (WebP has no field)."""
    with Image.open(path) as picture:
        if picture.format != "WEBP":
            return picture.info["dpi"]
        exif = picture.getexif()
        scale = 2.54 if exif.get(RESOLUTION_UNIT, 2) == 3 else 1.0
        return (float(exif[X_RESOLUTION]) * scale, float(exif[Y_RESOLUTION]) * scale)


def test_each_source_of_resolution_is_read_in_dots_per_inch(tmp_path):
    for name, dpi in printed_photos(tmp_path / "in").items():
        path = next((tmp_path / "in").glob(f"{name}.*"))
        assert read_image_and_facts(path)[1].dpi == pytest.approx(dpi, abs=0.01), name


@pytest.mark.parametrize("fmt", [None, "jpg", "png", "webp"])  # None: each keeps its format (TIFF too)
def test_composites_keep_the_print_resolution(tmp_path, model_env, fmt):
    photos = printed_photos(tmp_path / "in")
    out = tmp_path / "out"
    override = ["--composite-format", fmt] if fmt else []
    done = run_segtool(["image", tmp_path / "in", "--blur", "--no-confidence-masks", *override, "-o", out], model_env)
    assert done.returncode == 0, done.stderr.decode()
    for name, dpi in photos.items():
        [composite] = out.glob(f"{name}.blur.*")
        # JFIF stores whole dots per inch; pHYs and BMP whole dots per metre (0.03 dpi apart)
        tolerance = 0.5 if composite.suffix == ".jpg" else 0.03
        assert written_dpi(composite) == pytest.approx(dpi, abs=tolerance), composite.name
    assert not list(out.glob("*.category.png"))  # (nothing else asked for)


def test_a_tiff_without_resolution_is_not_made_one_dpi(tmp_path):
    source = tmp_path / "plain.tif"
    Image.fromarray(upright_photo()).save(source)
    pixels, facts = read_image_and_facts(source)
    assert facts.dpi is None
    write_image(tmp_path / "copy.tif", pixels, facts=facts)
    with Image.open(tmp_path / "copy.tif") as copy:
        assert copy.info.get("dpi") in (None, (72.0, 72.0))


def test_strip_metadata_drops_the_resolution_too(tmp_path, model_env):
    printed_photos(tmp_path / "in")
    out = tmp_path / "out"
    done = run_segtool(["image", tmp_path / "in" / "tiff-300.tif", "--blur", "--strip-metadata", "-o", out], model_env)
    assert done.returncode == 0, done.stderr.decode()
    with Image.open(out / "tiff-300.blur.tif") as picture:
        assert picture.info.get("dpi", (1, 1)) != (300, 300)


def test_a_jpeg_without_a_resolution_is_not_given_one(tmp_path):
    # Pillow reports 72 dpi for a JPEG with EXIF but no resolution anywhere: a guess, not a fact
    source = tmp_path / "phone.jpg"
    Image.fromarray(upright_photo()).save(source, exif=phone_exif(1).tobytes())
    assert read_image_and_facts(source)[1].dpi is None
    source = tmp_path / "exif-72.jpg"
    Image.fromarray(upright_photo()).save(source, exif=exif_resolution(72, 72))
    assert read_image_and_facts(source)[1].dpi == (72.0, 72.0)
