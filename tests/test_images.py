"""numpynn.images: any picture of a digit -> an MNIST-like 28x28.

Every picture is drawn here with Pillow: a thick "7" whose geometry is fixed and only scaled, so every variant
of it (inverted, moved, huge, tiny, transparent, palette, JPEG, 16-bit, ...) should prepare to (nearly) the
same 28x28 as the reference. Tolerances are the measured differences with some room; each is stated beside
its case.
"""
import io
import os
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from numpynn import images
from numpynn.images import ImageError, prepare, prepare_many, to_png

SEVEN = [(100, 60), (300, 60), (170, 340)]   # the stroke's corners, in a 400x400 canvas at scale 1


def seven(scale=1.0, canvas=None, at=(0, 0), ink=255, paper=0, mode="L"):
    """A 7: a 200x280 stroke 28 px thick (at scale 1), `at` pixels from the top left of a 400x400 canvas
    (scaled), or of `canvas` (width, height) when given."""
    size = canvas or (round(400 * scale), round(400 * scale))
    picture = Image.new(mode, size, paper)
    points = [(at[0] + x * scale, at[1] + y * scale) for x, y in SEVEN]
    ImageDraw.Draw(picture).line(points, fill=ink, width=max(1, round(28 * scale)), joint="curve")
    return picture


def encoded(picture, fmt, **options) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **options)
    return buffer.getvalue()


def transparent_seven(colour):
    """The 7 in `colour`, opaque, on a fully transparent canvas: a digit drawn in a browser."""
    return seven(ink=colour + (255,), paper=(0, 0, 0, 0), mode="RGBA")


def noisy_seven(sigma):
    """Dark ink (40) on grey paper (200) with Gaussian grain: a photo, roughly."""
    rng = np.random.default_rng(0)
    pixels = np.asarray(seven(ink=40, paper=200), np.float32) + rng.normal(0, sigma, (400, 400))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def shaded_seven(low, high, angle=0.0, sigma=0.0, at=(0, 0)):
    """Dark ink on paper lit from one side: the paper's level runs from `low` to `high` (0..255) across the
    picture, in the direction `angle` (degrees, 0: left to right), and the ink lets through a seventh of the
    light that falls on it, as a pen's stroke on a photographed page; Gaussian grain of `sigma` on top."""
    rows, cols = np.mgrid[0:400, 0:400] / 399.0                                   # (400, 400) each
    t = np.cos(np.radians(angle)) * cols + np.sin(np.radians(angle)) * rows
    light = low + (high - low) * (t - t.min()) / (t.max() - t.min())              # (400, 400) the paper
    ink = np.asarray(seven(at=at), np.float32) / 255                             # 1 where the pen went
    pixels = light * (1 - ink * 6 / 7) + np.random.default_rng(0).normal(0, sigma, light.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def sixteen_bit_png():
    picture = Image.fromarray(np.asarray(seven(), np.uint16) * 257)   # mode I;16, 0..65535
    assert picture.mode == "I;16"
    return encoded(picture, "PNG")


def exif_rotated_jpeg():
    """Stored on its side, with EXIF orientation 6 ("rotate 90 degrees clockwise to display"), as phones do."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(seven(ink=0, paper=255).transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif)


REFERENCE = prepare(seven())

# name, how to make the picture, and how close its result must be to REFERENCE:
# ("max", t): max |x - REFERENCE| <= t       ("corr", r): correlation of the 784 pixels >= r
VARIANTS = {
    # The same pixels, reached another way: measured difference 0.
    "inverted, black ink on white": (lambda: seven(ink=0, paper=255), ("max", 1e-6)),
    "off-centre on a big canvas": (lambda: seven(canvas=(1600, 1200), at=(1100, 700)), ("max", 1e-6)),
    "RGBA, black ink on transparent": (lambda: transparent_seven((0, 0, 0)), ("max", 1e-6)),
    "RGBA, white ink on transparent": (lambda: transparent_seven((255, 255, 255)), ("max", 1e-6)),
    "palette (P)": (lambda: seven(ink=0, paper=255).convert("RGB").convert("P"), ("max", 1e-6)),
    "palette with a transparent colour": (lambda: transparent_seven((0, 0, 0)).quantize(), ("max", 1e-6)),
    "BMP bytes": (lambda: encoded(seven(ink=0, paper=255), "BMP"), ("max", 1e-6)),
    "16-bit greyscale PNG": (sixteen_bit_png, ("max", 1e-6)),
    "bilevel (mode 1)": (lambda: seven(ink=0, paper=255).convert("1"), ("max", 1e-6)),
    "CMYK": (lambda: seven(ink=0, paper=255).convert("CMYK"), ("max", 1e-6)),
    "red ink on cream paper (RGB)": (lambda: seven(ink=(200, 30, 30), paper=(250, 250, 200), mode="RGB"),
                                     ("max", 1e-6)),
    "low contrast, 150 on 200": (lambda: seven(ink=150, paper=200), ("max", 1e-6)),
    "dim photo: black ink on dark grey paper, 10 on 100": (lambda: seven(ink=10, paper=100), ("max", 1e-6)),
    "light ink on light grey, 230 on 150": (lambda: seven(ink=230, paper=150), ("max", 1e-6)),
    "uint8 array": (lambda: np.asarray(seven(ink=0, paper=255)), ("max", 1e-6)),
    "float array in [0, 1]": (lambda: np.asarray(seven(), np.float64) / 255, ("max", 1e-6)),
    "RGBA uint8 array": (lambda: np.asarray(transparent_seven((0, 0, 0))), ("max", 1e-6)),
    # Resampled or lossy: measured max diff 0.053 (huge), 0.007 (JPEG), 0.077 (EXIF JPEG), 0.020 (grain);
    # correlation 0.943 (28x28 picture) and 0.894 (20x20 picture, enlarged): drawn 1 or 2 pixels thick,
    # the tiny 7s are not quite the same shape as the reference.
    "huge, 2000x1500": (lambda: seven(4, canvas=(2000, 1500), at=(400, -150)), ("max", 0.12)),
    "JPEG, quality 75": (lambda: encoded(seven(ink=0, paper=255), "JPEG", quality=75), ("max", 0.05)),
    "JPEG on its side with EXIF orientation": (exif_rotated_jpeg, ("max", 0.15)),
    "grainy photo, noise sigma 12/255": (lambda: noisy_seven(12), ("max", 0.06)),
    "paper shaded 120 to 240, left to right": (lambda: shaded_seven(120, 240), ("max", 0.10)),
    "paper shaded 90 to 250 diagonally, grain 8/255, JPEG": (
        lambda: encoded(Image.fromarray(shaded_seven(90, 250, angle=35, sigma=8)), "JPEG", quality=85),
        ("max", 0.15)),
    "paper shaded 110 to 300, clipped to white on one side": (lambda: shaded_seven(110, 300, angle=60),
                                                              ("max", 0.10)),
    "tiny, 28x28": (lambda: seven(0.07), ("corr", 0.92)),
    "tiny, 20x20 (enlarged)": (lambda: seven(0.05), ("corr", 0.85)),
}


def centre_of_mass(x):
    rows = np.arange(x.shape[0])
    return x.sum(axis=1) @ rows / x.sum(), x.sum(axis=0) @ rows / x.sum()


def check_mnist_like(x):
    assert x.shape == (28, 28) and x.dtype == np.float32
    assert x.min() >= 0 and x.max() == pytest.approx(1, abs=1e-6)
    rows, cols = np.nonzero(x)
    assert rows.max() - rows.min() < 20 and cols.max() - cols.min() < 20   # the ink fits in 20x20
    r_c, c_c = centre_of_mass(x)
    assert abs(r_c - 14) <= 0.5 and abs(c_c - 14) <= 0.5                 # MNIST's convention: row 14, column 14


def test_reference_is_mnist_like():
    check_mnist_like(REFERENCE)
    rows, cols = np.nonzero(REFERENCE)
    assert rows.max() - rows.min() + 1 == 20                             # the 7 is taller than wide: 20 rows
    # The 7's bar puts its centre of mass high (row 6 of its 20), so centring moves it down to rows 8..27:
    # the lowest row touches the field's edge, as in 90 of MNIST's 10,000 test digits.
    assert (rows.min(), rows.max()) == (8, 27)


@pytest.mark.parametrize("name", VARIANTS)
def test_variants_prepare_like_the_reference(name):
    make, (kind, tolerance) = VARIANTS[name]
    x = prepare(make())
    check_mnist_like(x)
    if kind == "max":
        assert np.abs(x - REFERENCE).max() <= tolerance
    else:
        assert np.corrcoef(x.ravel(), REFERENCE.ravel())[0, 1] >= tolerance


def test_paths_file_objects_and_open_images(tmp_path):
    path = tmp_path / "seven.png"
    seven(ink=0, paper=255).save(path)
    for source in (path, str(path), path.read_bytes(), bytearray(path.read_bytes())):
        np.testing.assert_array_equal(prepare(source), REFERENCE)
    with path.open("rb") as f:
        np.testing.assert_array_equal(prepare(f), REFERENCE)
        assert not f.closed                                # the caller's file is the caller's to close
    with Image.open(path) as picture:                      # opened, not yet decoded
        np.testing.assert_array_equal(prepare(picture), REFERENCE)


def test_the_input_array_is_left_alone():
    a = np.asarray(seven(ink=0, paper=255)).copy()
    before = a.copy()
    prepare(a)
    np.testing.assert_array_equal(a, before)


def test_a_lopsided_digit_is_shifted_only_as_far_as_it_fits():
    # A bar along the top of a square box, with a thin left side: its centre of mass is near the top (row ~3
    # of 20), so centring it would push its bottom 3 rows off the field. It is placed at the bottom instead.
    a = np.zeros((100, 100), np.uint8)
    a[20:23, 20:80] = 255        # the bar
    a[20:80, 20:21] = 255        # the left side
    x = prepare(a)
    rows, _ = np.nonzero(x)
    assert rows.min() == 8 and rows.max() == 27            # all 20 rows are there, the last on the edge
    assert centre_of_mass(x)[0] < 13.5                     # and so the centre of mass is off-centre


def test_prepare_many_stacks_rows():
    pictures = [seven(), seven(ink=0, paper=255), np.asarray(seven(2))]
    X = prepare_many(pictures)
    assert X.shape == (3, 784) and X.dtype == np.float32
    for row, picture in zip(X, pictures):
        np.testing.assert_array_equal(row, prepare(picture).reshape(-1))
    assert prepare_many([]).shape == (0, 784)


# ---------------------------------------------------------------------------------------------------------
# The fast path for 8-bit grey pictures (the web page's drawing pad) gives the same digit, to the bit

def random_pictures(n, seed=0):
    """n uint8 pictures of every kind _ink meets: dark or light or mid-grey paper, evenly lit or shaded, clean
    or grainy, with a few strokes of any level, or none (blank), tiny to pad-sized, square or not."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = rng.integers(1, 60, 2) if i % 3 else rng.choice([28, 280], 2)
        paper = rng.choice([0, 255, int(rng.integers(0, 256))])
        picture = Image.new("L", (int(w), int(h)), int(paper))
        draw = ImageDraw.Draw(picture)
        for _ in range(rng.integers(0, 4)):                              # 0 strokes: a blank picture
            draw.line([tuple(rng.integers(0, [w, h])) for _ in range(3)], fill=int(rng.integers(0, 256)),
                      width=int(rng.integers(1, 8)))
        a = np.asarray(picture, np.float32) + rng.normal(0, rng.choice([0, 3, 15]), (h, w))   # grain
        if i % 4 == 0:                                                   # light falling off across it
            a += rng.uniform(-2, 2) * np.arange(h)[:, None] + rng.uniform(-2, 2) * np.arange(w)[None, :]
        yield np.clip(np.rint(a), 0, 255).astype(np.uint8)


def prepared_or_error(image):
    try:
        return prepare(image)
    except ImageError as error:
        return str(error)


def test_uint8_pictures_prepare_exactly_as_the_same_pixels_as_floats():
    # uint8 goes through _ink_of_levels (a histogram, a table of 256 levels, only the ink's box in floats);
    # the same pixels as float32 in [0, 1] go through _ink, which works on every pixel: the straightforward
    # reference. Same digit to the bit, or the same one-line error.
    blank = 0
    for a in random_pictures(300):
        fast, reference = prepared_or_error(a), prepared_or_error(a.astype(np.float32) / 255)
        if isinstance(reference, str):
            assert fast == reference
            blank += 1
        else:
            assert isinstance(fast, np.ndarray) and fast.dtype == np.float32
            np.testing.assert_array_equal(fast, reference)
    assert 20 < blank < 200                                # both kinds of picture were tried


def test_a_line_one_pixel_thin_on_the_box_filters_border_still_prepares():
    # A 47-pixel line, 1 thin: _fit pads it to 47x47 at row 23, and 47 -> 20 puts row 23's centre (23.5) on
    # the border of two of BOX's result rows, so BOX alone drops it and the crop would be empty.
    picture = np.zeros((60, 47), np.uint8)
    picture[30, :] = 255
    x = prepare(picture)
    assert x.shape == (28, 28) and x.max() == 1 and np.count_nonzero(x.sum(axis=1)) <= 2


def test_an_opaque_rgba_picture_prepares_as_the_grey_picture_with_its_alpha():
    # A browser's canvas gives RGBA PNGs that are opaque everywhere: read as plain grey, nothing to flatten.
    # The reference: the same grey and alpha as a (H, W, 2) array, which goes through _flatten.
    for a in [np.asarray(seven(ink=0, paper=255)), np.asarray(seven(0.7))]:
        rgba = Image.fromarray(a).convert("RGBA")
        reference = np.stack([a.astype(np.float32) / 255, np.ones(a.shape, np.float32)], axis=2)   # (H, W, 2)
        np.testing.assert_array_equal(prepare(encoded(rgba, "PNG")), prepare(reference))


@pytest.mark.parametrize("low, high, angle, shaded", [
    (200, 200, 0, False), (200, 210, 0, False),        # even, or changing by 10/255 < SHADING: one level
    (120, 240, 0, True), (240, 120, 90, True), (60, 250, 135, True),
])
def test_paper_lit_from_one_side_is_a_plane_through_the_frame(low, high, angle, shaded):
    """_shading finds the plane when the light changes by SHADING or more across the picture, even with the
    7's bar running out through the left edge (most of the frame is still paper), and None otherwise."""
    pixels = shaded_seven(low, high, angle, at=(-120, 0))
    assert pixels[60, 0] < 0.3 * pixels[200, 0]                       # the stroke crosses the frame
    plane = images._shading(pixels)
    assert (plane is not None) == shaded
    if shaded:
        a, b, c = plane
        truth = shaded_seven(low, high, angle, at=(-2000, 0)) / 255   # the paper alone
        rows, cols = np.mgrid[0:400, 0:400]
        assert np.abs(a + b * rows + c * cols - truth).max() < 0.02
        check_mnist_like(prepare(pixels))


def test_shading_keeps_the_even_road_for_the_pad():
    """The page's pad (black, then white ink) is evenly lit: no plane, so the uint8 road of _ink_of_levels,
    even when strokes run off the pad's edges (ink along much of the frame is no plane of light)."""
    assert images._shading(np.asarray(seven())) is None
    assert images._shading(np.asarray(seven(), np.float32) / 255) is None
    rng = np.random.default_rng(0)
    for _ in range(200):
        pad = Image.new("L", (280, 280), 0)
        ImageDraw.Draw(pad).line([tuple(rng.integers(-20, 300, 2)) for _ in range(rng.integers(2, 6))],
                                 fill=255, width=int(rng.integers(10, 40)), joint="curve")
        assert images._shading(np.asarray(pad)) is None


@pytest.mark.parametrize("n", [1, 2, 7, 8, 1116, 1117])
def test_the_median_of_levels_is_numpys_median(n):
    rng = np.random.default_rng(n)
    values = rng.random(256).astype(np.float32)           # in no order, with the ties of a level table
    values[::7] = values[3]
    counts = rng.multinomial(n, rng.dirichlet(np.full(256, 0.05)))
    assert images._median_of_levels(values, counts) == np.median(np.repeat(values, counts))


# ---------------------------------------------------------------------------------------------------------
# Errors: one line, naming the file and what to do

def png_header_claiming(width, height) -> bytes:
    """A PNG that is only a header: it claims width x height pixels and holds none."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)   # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def assert_one_line_error(source, *phrases):
    with pytest.raises(ImageError) as caught:
        prepare(source)
    message = str(caught.value)
    assert "\n" not in message
    for phrase in phrases:
        assert phrase in message, message
    return message


@pytest.mark.parametrize("name, make, phrases", [
    ("blank.png", lambda: Image.new("L", (64, 48), 255), ["is blank", "no ink", "draw a digit"]),
    ("grey.png", lambda: Image.new("RGB", (64, 48), (128, 128, 128)), ["is blank"]),
    ("transparent.png", lambda: Image.new("RGBA", (64, 48), (0, 0, 0, 0)), ["is blank", "transparent"]),
    ("faint.png", lambda: seven(ink=20, paper=0), ["is blank"]),                  # 20/255 is under NOISE
    ("grain.png", lambda: Image.fromarray(noisy_seven(12)[:40, :40]), ["is blank", "grainy"]),
    ("static.png", lambda: Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)),
     ["too uneven to tell the paper from the ink", "plain paper"]),
])
def test_blank_pictures(tmp_path, name, make, phrases):
    path = tmp_path / name
    make().save(path)
    assert_one_line_error(path, str(path), *phrases)


def test_unreadable_files(tmp_path):
    text = tmp_path / "digit.png"
    text.write_text("not a picture at all\n")
    assert_one_line_error(text, str(text), "not a picture")

    whole = encoded(seven(ink=0, paper=255), "PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole[: len(whole) // 2])
    assert_one_line_error(cut, str(cut), "damaged or cut short")
    cut.write_bytes(whole[:20])                            # inside the header
    assert_one_line_error(cut, str(cut))

    # EPS is a format Pillow opens by running Ghostscript: refused, even when Ghostscript is installed.
    eps = tmp_path / "digit.eps"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n0 0 moveto 10 10 lineto stroke\n")
    assert_one_line_error(eps, str(eps), "not a picture")

    missing = tmp_path / "nowhere.png"
    assert_one_line_error(missing, str(missing), "no such file")
    assert_one_line_error(tmp_path, str(tmp_path), "folder")
    assert_one_line_error(b"", "the picture", "not a picture")


def test_oversized_pictures_are_refused_before_decoding(tmp_path, monkeypatch):
    claim = tmp_path / "claim.png"
    claim.write_bytes(png_header_claiming(8000, 8000))     # 64 megapixels claimed in 57 bytes
    assert_one_line_error(claim, str(claim), "8000x8000", "over the limit", "scale it down")
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header_claiming(30000, 30000))    # past Pillow's own limit too, which fires first
    assert_one_line_error(bomb, str(bomb), "over the limit")
    monkeypatch.setattr(images, "MAX_PIXELS", 400 * 400 - 1)
    assert_one_line_error(seven(), "400x400", "over the limit")
    assert_one_line_error(np.zeros((400, 400), np.uint8), "the array", "over the limit")


def ico_holding(png: bytes, width_byte: int = 16) -> bytes:
    """An ICO file with one icon whose directory says width_byte x width_byte and whose data is `png`."""
    directory = struct.pack("<BBBBHHII", width_byte, width_byte, 0, 0, 1, 32, len(png), 6 + 16)
    return struct.pack("<HHH", 0, 1, 1) + directory + png


def test_ico_is_refused_before_its_icon_is_decoded(tmp_path):
    # An icon's header gives its size in one byte, but the PNG inside may be any size, and Pillow decodes an
    # ICO's icon while opening it. Refused as a format, so the PNG's 30000x30000 claim is never acted on.
    ico = tmp_path / "digit.ico"
    ico.write_bytes(ico_holding(png_header_claiming(30000, 30000)))
    started = time.perf_counter()
    assert_one_line_error(ico, str(ico), "not a picture")
    assert time.perf_counter() - started < 1
    assert "ICO" not in images.FORMATS


def test_pillow_cap_is_numpynn_cap():
    assert Image.MAX_IMAGE_PIXELS <= images.MAX_PIXELS  # Pillow itself refuses past twice this, inside open


def test_a_picture_that_decodes_to_another_size_than_it_claimed_is_refused():
    class Lying(Image.Image):  # a format whose header and pixels disagree, as an ICO's did
        def __init__(self):
            super().__init__()
            self._mode, self._size = "L", (40, 40)

        def load(self):
            self.im = Image.new("L", (400, 400), 255).im
            self._size = (400, 400)
            return None

    assert_one_line_error(Lying(), "header says 40x40", "holds 400x400")


@pytest.mark.parametrize("array, phrase", [
    (np.zeros((5, 5, 5), np.uint8), "shape (5, 5, 5)"),
    (np.zeros(784, np.uint8), "reshape"),
    (np.zeros((0, 5), np.uint8), "5x0"),                   # width x height
    (np.full((5, 5), 2.0), "[0, 1]"),
    (np.full((5, 5), np.nan), "[0, 1]"),
    (np.full((5, 5), -1), "from -1"),
    (np.zeros((5, 5), np.complex64), "complex64"),
])
def test_bad_arrays(array, phrase):
    assert_one_line_error(array, "the array", phrase)


def test_wrong_type():
    with pytest.raises(TypeError, match="got int"):
        prepare(7)


# ---------------------------------------------------------------------------------------------------------
# to_png

def test_to_png_round_trip(tmp_path):
    path = tmp_path / "digit.png"
    to_png(REFERENCE, path)
    back = np.asarray(Image.open(path))
    assert back.shape == (28, 28) and back.dtype == np.uint8
    np.testing.assert_array_equal(back, np.rint(REFERENCE * 255))
    to_png(REFERENCE.reshape(-1), path, scale=8)           # overwrites; a row of prepare_many's output works
    big = np.asarray(Image.open(path))
    assert big.shape == (224, 224)
    np.testing.assert_array_equal(big[::8, ::8], back)     # each pixel an 8x8 square
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digit.png"]   # no temporary file left
    buffer = io.BytesIO()
    to_png(REFERENCE, buffer)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(buffer.getvalue()))), back)


def test_to_png_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "digit.png"
    to_png(REFERENCE, path)
    before = path.read_bytes()

    def failing_replace(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        to_png(np.zeros((28, 28)), path)
    assert path.read_bytes() == before                     # the old file is untouched ...
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digit.png"]   # ... and the temporary file is gone


@pytest.mark.parametrize("digit, scale", [(np.zeros((28, 28, 4)), 1), (np.zeros(10), 1), (np.zeros((28, 28)), 0),
                                          (np.zeros((28, 28)), 2.0), (np.full((28, 28), np.inf), 1)])
def test_to_png_refuses_bad_input(tmp_path, digit, scale):
    with pytest.raises(ValueError):
        to_png(digit, tmp_path / "x.png", scale=scale)
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------------------
# The real thing

@pytest.mark.mnist
def test_preparing_mnist_test_digits_does_not_lower_accuracy(mnist_dir):
    """MNIST's digits are already what `prepare` makes, so preparing them again must not hurt a network
    trained on them; nor must enlarging them 3x, inverting them to black on white and moving them about.

    Measured (150 iterations, H = 32, about 6 s of training on 2 cores): raw 91.62%, prepared 91.57%,
    redrawn 91.59%. The margin allowed is 0.5 percentage points."""
    from numpynn import seed, seed_fast
    from numpynn.data import load_mnist, load_raw

    splits = load_mnist("mnist", mnist_dir, progress=False)
    _, _, x_test, y_test = load_raw("mnist", mnist_dir, progress=False)   # uint8 (10000, 28, 28)
    start = time.perf_counter()
    params, _ = seed_fast.gradient_descent(splits.X_train.T, splits.y_train, 150, 0.5, rng=np.random.default_rng(0),
                                      hidden=32, log=None)
    trained_s = time.perf_counter() - start

    def redrawn(i, x):                                     # 84x84 black on white, somewhere on a 130x110 page
        enlarged = Image.fromarray(255 - x).resize((84, 84), Image.Resampling.BICUBIC)
        page = Image.new("L", (130, 110), 255)
        page.paste(enlarged, (10 + i % 30, 5 + i % 20))
        return page

    raw = seed.accuracy(splits.X_test.T, splits.y_test, params)
    prepared = seed.accuracy(prepare_many(x_test).T, y_test, params)
    redrawn_acc = seed.accuracy(prepare_many([redrawn(i, x) for i, x in enumerate(x_test)]).T, y_test, params)
    print(f"\ntrained in {trained_s:.1f} s; test accuracy raw {raw:.2%}, prepared {prepared:.2%}, "
          f"redrawn {redrawn_acc:.2%}")
    assert raw > 0.85                                      # the network learned something
    assert prepared >= raw - 0.005
    assert redrawn_acc >= raw - 0.005


def test_digit_grid_lays_rows_of_digits_on_grey_lines_with_a_white_one_under_the_first_row():
    from numpynn.images import digit_grid

    first = np.array([[[0.1, 0.2], [0.3, 0.4]], [[0.5, 0.6], [0.7, 0.8]]], np.float32)   # (2, 2, 2)
    second = np.zeros((2, 4), np.float32)                                               # (2, 4): flat rows
    grid = digit_grid([first, second], gap=1)
    g, w = 0.3, 1.0                                                                     # grey line, white line
    expected = np.array([[g, g,   g,   g, g,   g,   g],
                         [g, 0.1, 0.2, g, 0.5, 0.6, g],
                         [g, 0.3, 0.4, g, 0.7, 0.8, g],
                         [w, w,   w,   w, w,   w,   w],
                         [g, 0,   0,   g, 0,   0,   g],
                         [g, 0,   0,   g, 0,   0,   g],
                         [g, g,   g,   g, g,   g,   g]], np.float32)
    assert grid.dtype == np.float32 and grid.shape == (7, 7)
    np.testing.assert_array_equal(grid, expected)
