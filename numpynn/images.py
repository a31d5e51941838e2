"""Pictures of digits: any picture turned into what the network expects (a 28x28 MNIST-like image), and back.

MNIST was made from NIST's black-and-white digits: each was scaled to fit a 20x20 box with its aspect ratio
kept, which anti-aliasing turned into grey levels, then placed in a 28x28 field so that its centre of mass
sat at the centre. `prepare` repeats that recipe on any picture, so a digit drawn in a browser or
photographed on paper looks to the network like the digits it learned from:

1. read     any picture Pillow decodes (PNG, JPEG, BMP, GIF, TIFF, WebP, ...; any size up to MAX_PIXELS,
            any mode), or a PIL image, or a numpy array; only the first frame of an animation; EXIF
            orientation (a phone's photo taken sideways) is applied
2. grey     luminance, L = 0.299 R + 0.587 G + 0.114 B (ITU-R 601, as Pillow's convert("L"))
3. flatten  transparent pixels are laid over a background that contrasts with the opaque part (white when
            the opaque part is dark on average, black when it is light): the ink is what is opaque
4. ink      the background level is the median of the picture's outer frame of pixels, or, on paper lit
            from one side (a photo's light falling off across the page), a plane through the frame
            (_shading); a pixel that differs from the background by less than NOISE (10% of full scale),
            or by less than five times the frame's own noise, is background; the rest is ink, dark or
            light, whichever stands out more (_dark_ink); dark ink is inverted, so the ink is white on black
5. crop     to the bounding box of the ink
6. scale    so that the longer side is 20 pixels, aspect ratio kept (the crop is padded to a square, which
            is scaled to 20x20, so the shorter side needs no rounding): Pillow's BOX filter when shrinking
            (each pixel becomes the fraction of its area covered by ink: exactly what anti-aliasing means,
            and it never rings outside [0, 1] as LANCZOS does), BILINEAR when enlarging a tiny picture
7. levels   the brightest pixel becomes 1, as in MNIST
8. centre   paste into 28x28 with an integer shift that puts the centre of mass at row 14, column 14
            (0-based): MNIST's own convention, measured on its test set, where every digit's centre of mass
            lies in [13.5, 14.5] on both axes. A digit so lopsided that this would push ink off the field is
            shifted only as far as it fits: nothing is cut, and its centre of mass is then off-centre.

The result is float32 (28, 28) in [0, 1], white ink on black. The way back: `to_png` writes such an image (or
any 2-D one in [0, 1]) as a PNG, and `digit_grid` lays rows of digits out as one image, to show them side by side.

Limits, on purpose:
- One digit per picture. Everything that stands out from the background is ink: a second digit, a ruled
  line or a speck of dirt far from the digit widens the crop. Crop the picture first.
- The background is decided by the frame of outer pixels: a picture whose digit covers most of its border
  is misread. Shading that is not a plane (a spotlight, the sharp edge of a shadow) is not modelled.
- Photos are not cleaned up: no deskewing, no stroke thickening, no shadow removal.
- Formats that Pillow reads by running another program (EPS, through Ghostscript) or that are not
  pictures of pixels (PDF, WMF, ...) are refused; see FORMATS.
- The whole picture is decoded into memory; its grey levels as float32 (4 bytes a pixel, 200 MB at the
  50-megapixel cap), or as bytes when it is 8-bit with no transparency. See MAX_PIXELS for the measured peaks.
"""
from __future__ import annotations

import io
import os
import warnings

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .atomic import write_atomically


class ImageError(ValueError):
    """The picture cannot be prepared. The one-line message names the file, the problem and the fix."""


# The one picture size limit, for `numpynn predict`, the Python API and the web server alike. Larger pictures are
# refused from the size their header claims, before decoding: a 100-byte PNG can claim 10^10 pixels.
# Why 50 megapixels: a phone's photo of a digit is 12 to 50 Mpx (8160x6120 = 49.9 Mpx, the largest common
# sensor mode), and `numpynn predict` must read it as it comes off the phone. The cost is memory while one
# picture is decoded: measured peaks at the cap, 0.34 GB for a JPEG photo (0.29 GB when its paper is shaded,
# whose ink is made only for its bounding box) and 0.96 GB for a PNG with partial transparency (RGBA, then
# grey and alpha as float32), and 1.3 s and 3.8 s. A 0.2 MB PNG can claim that much, so the server, which decodes uploads in worker
# threads, decodes at most web.pictures.DECODERS at once.
MAX_PIXELS = 50_000_000
NOISE = 0.1               # a pixel this close to the background (0..1 scale, ~26/255) is background, not ink;
                          # more when the picture's frame is noisier (see _ink)
SHADING = 0.05            # paper whose light changes by this much (0..1 scale) or more across the picture is
                          # shaded: its background is a plane, not one level (see _shading)
SEGMENTS = 8              # _shading reads each side of the frame as this many runs, by their medians
BOX = 20                  # MNIST's digits fit a 20x20 box ...
SIZE = 28                 # ... inside a 28x28 field ...
CENTRE = 14.0             # ... with the centre of mass at row 14, column 14 (0-based, measured on MNIST)
# Raster formats that Pillow decodes itself and whose header states the size that is then decoded. Pillow
# also opens EPS (by running Ghostscript) and a few scientific formats; a web upload must not reach those.
# ICO is left out too: its header gives each icon's size in one byte (at most 256), but an icon may hold a
# PNG of any size, which Pillow decodes at its real size (a 13000x13000 one took 645 MB).
FORMATS = ("PNG", "JPEG", "BMP", "DIB", "GIF", "TIFF", "WEBP", "PPM", "TGA", "QOI", "AVIF")
# Pillow's own cap, for every picture opened in this process: it refuses pictures over twice this size
# inside Image.open, before numpynn's check. Lowered to ours, never raised if the user set a smaller one.
# Between once and twice the cap Pillow only warns; numpynn refuses those pictures itself, in one line, so
# the warning would be a second line saying the same thing.
Image.MAX_IMAGE_PIXELS = min(Image.MAX_IMAGE_PIXELS or MAX_PIXELS, MAX_PIXELS)
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 weights, as Pillow's convert("L")


def prepare(image) -> np.ndarray:
    """One picture -> float32 (28, 28) in [0, 1], white ink on black, as an MNIST digit.

    image: a path (str or Path), the file's bytes, a binary file object, a PIL image, or a numpy array
    (H, W) or (H, W, C) with C = 1 (grey), 2 (grey, alpha), 3 (RGB) or 4 (RGBA), holding uint8 0..255,
    uint16 0..65535 or floats in [0, 1]. Raises ImageError when the picture cannot be read or holds no ink."""
    name = _name(image)
    grey, alpha = _read(image, name)                     # (H, W) uint8 or float32 in [0, 1]; alpha (H, W) or None
    if alpha is not None:
        grey = _flatten(grey, alpha, name)
    ink = _ink(grey, name)                               # (h, w) the ink's bounding box: background 0, ink > 0
    digit = _fit(ink)                                    # (h, w), max(h, w) = 20
    # Levels on the small digit: its brightest pixel becomes 1, as in MNIST (all 10,000 test digits reach
    # 254 or 255). Taken before scaling, the maximum would be one grainy pixel's.
    return _centre(digit / digit.max())


def prepare_many(images) -> np.ndarray:
    """Many pictures -> float32 (N, 784), one prepared digit per row, ready for a batch-first network.
    The first picture that cannot be prepared raises its ImageError, which names it."""
    X = np.zeros((len(images), SIZE * SIZE), np.float32)  # (N, 784)
    for i, image in enumerate(images):                    # decoding is per picture: there is no batch form
        X[i] = prepare(image).reshape(-1)
    return X


def to_png(digit28, path_or_file, scale: int = 1) -> None:
    """Save a 2-D float image in [0, 1] (a prepared digit: what the network saw) as a greyscale PNG, or an
    (H, W, 3) one in colour (explanation_picture's).

    scale: each pixel becomes a scale x scale square (nearest neighbour: the pixels stay visible).
    Given a path, the file appears whole or not at all (numpynn.atomic.write_atomically).
    Given a binary file object, the PNG is written into it."""
    x = np.asarray(digit28, dtype=np.float32)
    if x.shape == (SIZE * SIZE,):                         # a row of prepare_many's output
        x = x.reshape(SIZE, SIZE)
    if not (x.ndim == 2 or (x.ndim == 3 and x.shape[2] == 3)) or x.size == 0:
        raise ValueError(f"to_png needs a 2-D image such as (28, 28) or an RGB one (H, W, 3), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("to_png: the image holds NaN or infinite values")
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    pixels = np.rint(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)   # (H, W) or (H, W, 3)
    pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)      # (scale H, scale W[, 3])
    picture = Image.fromarray(pixels)                                # mode L or RGB
    if not isinstance(path_or_file, (str, os.PathLike)):
        picture.save(path_or_file, format="PNG")
        return
    write_atomically(path_or_file, lambda f: picture.save(f, format="PNG"))


def explanation_picture(digit28, S) -> np.ndarray:
    """The digit the network saw, and beside it a saliency map S (e.g. numpynn.explain.saliency) laid over a
    dimmed copy of it: red where a pixel raised the class's score, blue where it lowered it, the strongest pixel
    at full colour.  digit28, S: (28, 28) or (784,).  Returns float32 (28, 57, 3) in [0, 1], for to_png."""
    x = np.asarray(digit28, dtype=np.float32).reshape(SIZE, SIZE)
    s = np.asarray(S, dtype=np.float32).reshape(SIZE, SIZE)
    strongest = float(np.abs(s).max()) or 1.0
    rise, fall = np.clip(s / strongest, 0, 1)[..., None], np.clip(-s / strongest, 0, 1)[..., None]  # (28, 28, 1)
    base = np.repeat(0.35 * x[..., None], 3, axis=2)                                 # (28, 28, 3) dimmed digit
    red, blue = np.array([1.0, 0.15, 0.1], np.float32), np.array([0.2, 0.45, 1.0], np.float32)
    heat = base * (1 - rise - fall) + rise * red + fall * blue                       # one of rise, fall is 0
    gap = np.full((SIZE, 1, 3), 0.5, np.float32)                                     # a grey line between
    return np.concatenate([np.repeat(x[..., None], 3, axis=2), gap, heat], axis=1)  # (28, 57, 3)


def digit_grid(rows, gap: int = 2) -> np.ndarray:
    """Rows of square digits as one image: float32 (r (s + gap) + gap, n (s + gap) + gap) in [0, 1], for to_png.

    rows: r arrays of n digits each, every one (n, s, s) or (n, s*s), such as (n, 784) rows of MNIST. The digits
    sit on a grid of grey lines `gap` pixels wide; the line under the first row is white, which sets it apart
    (`numpynn augment-preview` puts the original digits there and augmented versions of them below)."""
    first = np.asarray(rows[0])
    side = first.shape[1] if first.ndim == 3 else int(round(np.sqrt(first.shape[1])))
    n, cell = len(first), side + gap
    grid = np.full((len(rows) * cell + gap, n * cell + gap), 0.3, np.float32)   # (H, W) grey lines between
    for r, row in enumerate(rows):
        for c, image in enumerate(np.asarray(row).reshape(-1, side, side)):
            grid[gap + r * cell : (r + 1) * cell, gap + c * cell : (c + 1) * cell] = image
    grid[cell : cell + gap] = 1.0                                               # the white line under row 0
    return grid


# ---------------------------------------------------------------------------------------------------------
# Reading: every kind of input becomes grey (H, W) float32 in [0, 1] and alpha (H, W) in [0, 1] or None; or,
# for an 8-bit picture with no transparency, grey as the uint8 levels themselves and no alpha, which _ink
# reads faster (see _ink_of_levels), with the same result.

def _name(image) -> str:
    """How messages name the picture."""
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    if isinstance(image, np.ndarray):
        return "the array"
    if isinstance(image, (bytes, bytearray, memoryview)):
        return "the picture"
    name = getattr(image, "filename", None) or getattr(image, "name", None)  # PIL image, file object
    return str(name) if isinstance(name, (str, os.PathLike)) and str(name) else "the picture"


def _read(image, name):
    if isinstance(image, np.ndarray):
        return _from_array(image, name)
    if isinstance(image, (str, os.PathLike)):
        source = image
        if os.path.exists(image) and not os.path.isfile(image) and not os.path.isdir(image):
            raise ImageError(f"{name}: not a regular file (a pipe or a device), which could be read forever; "
                             f"name a picture file")
    elif isinstance(image, (bytes, bytearray, memoryview)):
        source = io.BytesIO(image)
    elif hasattr(image, "read") or isinstance(image, Image.Image):
        source = image
    else:
        raise TypeError(f"prepare takes a path, bytes, a file object, a PIL image or a numpy array, "
                        f"got {type(image).__name__}")
    Image.init()                                          # registers the plugins, so FORMATS can be filtered
    formats = [f for f in FORMATS if f in Image.OPEN]     # AVIF, say, needs an optional library
    try:
        if isinstance(source, Image.Image):               # opened by the caller, perhaps not yet decoded
            return _decode(source, name)
        with Image.open(source, formats=formats) as picture:   # reads the header only
            return _decode(picture, name)
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file; check the path") from None
    except IsADirectoryError:
        raise ImageError(f"{name}: is a folder, not a picture; name a picture file") from None
    except Image.DecompressionBombError:                  # Pillow's own, larger cap, checked inside open
        raise ImageError(f"{name}: claims more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, over the limit of "
                         f"{MAX_PIXELS:,}; scale it down") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not a picture that can be read (PNG, JPEG, BMP, GIF, TIFF, WebP); "
                         f"save it as PNG or JPEG") from None
    except PermissionError:
        raise ImageError(f"{name}: no permission to read it; check the file's permissions") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as e:
        # What Pillow's decoders raise on a damaged file: "image file is truncated", "broken PNG file", ...
        reason = " ".join(str(e).split()) or type(e).__name__
        raise ImageError(f"{name}: the file is damaged or cut short ({reason}); save or download it again") \
            from None


def _check_size(width: int, height: int, name: str):
    # Decoding allocates what the header claims, so the claim is checked first, before any pixel is read.
    if width * height > MAX_PIXELS:
        raise ImageError(f"{name}: {width}x{height} pixels is over the limit of {MAX_PIXELS:,} pixels; "
                         f"scale it down")
    if width == 0 or height == 0:
        raise ImageError(f"{name}: {width}x{height} pixels holds nothing; draw a digit")


def _decode(picture: Image.Image, name: str):
    """A PIL image (header read, perhaps not yet decoded) -> grey, alpha."""
    claimed = picture.size
    _check_size(*claimed, name)
    picture.load()                                        # decoding happens here: damaged files fail here
    if picture.size != claimed:                           # a format whose header and pixels disagree
        raise ImageError(f"{name}: its header says {claimed[0]}x{claimed[1]} pixels but it holds "
                         f"{picture.size[0]}x{picture.size[1]}; save it again as PNG")
    if picture.getexif().get(ExifTags.Base.Orientation, 1) != 1:   # what exif_transpose looks at
        picture = ImageOps.exif_transpose(picture)        # a phone's photo, upright (a copy: only when needed)
    if picture.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # 16-bit, 32-bit and float greys: Pillow's convert("L") clips these rather than scaling them.
        return _scale(np.asarray(picture), name), None
    if "A" in picture.getbands() or "a" in picture.getbands() or picture.has_transparency_data:
        # P with a transparent colour, LA, PA, RGBa: all RGBA (converting RGBA itself would only copy it)
        rgba = picture if picture.mode == "RGBA" else picture.convert("RGBA")
        grey = np.asarray(rgba.convert("L"))              # (H, W) uint8
        alpha = rgba.getchannel("A")
        if alpha.getextrema()[0] == 255:  # opaque everywhere (a browser's canvas.toBlob, many screenshots)
            return grey, None                             # nothing to flatten
        return grey.astype(np.float32) / 255, np.asarray(alpha, np.float32) / 255   # (H, W) each
    try:
        grey = picture.convert("L")                       # 1, L, P, RGB, CMYK, YCbCr, ...
    except ValueError:
        raise ImageError(f"{name}: colour mode {picture.mode} cannot be made grey; save it as RGB") from None
    return np.asarray(grey), None                         # (H, W) uint8


def _from_array(a: np.ndarray, name: str):
    """A numpy array (H, W) or (H, W, C) -> grey, alpha."""
    if a.ndim == 3 and a.shape[2] in (1, 2, 3, 4):
        channels = a.shape[2]
    elif a.ndim == 2:
        channels = 1
        a = a[:, :, None]                                 # (H, W, 1)
    else:
        hint = "; reshape a flat MNIST row to (28, 28)" if a.shape == (SIZE * SIZE,) else ""
        raise ImageError(f"{name}: shape {a.shape} is not a picture; expected (H, W) or (H, W, C) "
                         f"with C = 1, 2, 3 or 4{hint}")
    _check_size(a.shape[1], a.shape[0], name)
    if a.dtype == np.uint8 and channels == 1:             # 8-bit grey, such as the page's drawing pad
        return a[:, :, 0], None                           # (H, W) uint8, as it is
    x = _scale(a, name)                                   # (H, W, C) float32 in [0, 1]
    colour = x[:, :, : 3 if channels >= 3 else 1]
    grey = colour @ LUMA if channels >= 3 else colour[:, :, 0]          # (H, W)
    alpha = x[:, :, -1] if channels in (2, 4) else None                  # (H, W) or None
    return grey.astype(np.float32), alpha


def _scale(a: np.ndarray, name: str) -> np.ndarray:
    """Pixel values -> float32 in [0, 1], by the dtype's range: uint8 / 255, uint16 / 65535, bool as 0 or 1,
    floats as they are (they must already lie in [0, 1]). Other integer types (Pillow's 32-bit mode I, an
    array of Python ints) are divided by 255 if they fit in 0..255, else by 65535 (16-bit PNGs that older
    Pillows opened as mode I)."""
    if a.dtype == np.bool_ or a.dtype == np.uint8:
        return a.astype(np.float32) / (1 if a.dtype == np.bool_ else 255)
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535
    if np.issubdtype(a.dtype, np.integer):
        low, high = int(a.min()), int(a.max())
        if low < 0 or high > 65535:
            raise ImageError(f"{name}: integer values from {low} to {high}; expected 0..255 or 0..65535")
        return a.astype(np.float32) / (255 if high <= 255 else 65535)
    if np.issubdtype(a.dtype, np.floating):
        x = a.astype(np.float32)
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise ImageError(f"{name}: float values must lie in [0, 1]; divide 0..255 values by 255")
        return x
    raise ImageError(f"{name}: pixels of type {a.dtype} are not a picture; use uint8 or float in [0, 1]")


# ---------------------------------------------------------------------------------------------------------
# The recipe

def _flatten(grey, alpha, name):
    """Lay the picture over a background: g = alpha * grey + (1 - alpha) * background.

    The opaque part is taken to be the ink, so the background is the opposite of its average grey: white
    under dark ink, black under light ink. Either way the ink stands out and step 4 decides what to invert.
    A picture with no transparency is unchanged (alpha = 1 everywhere)."""
    coverage = alpha.sum()
    if coverage == 0:
        raise ImageError(f"{name}: is blank: every pixel is transparent; draw a digit")
    ink_grey = float((alpha * grey).sum() / coverage)      # the opaque part's mean grey, alpha-weighted
    background = 1.0 if ink_grey < 0.5 else 0.0
    return alpha * grey + (1 - alpha) * background         # (H, W)


def _ink(grey, name):
    """White-on-black ink, cropped to its bounding box: background 0, ink the amount it stands out from the
    background, faint noise 0.

    The background level is the median of the outer frame of pixels: a digit that touches the border still
    leaves most of the frame to the background. Paper lit from one side is a plane instead (_shading). Dark
    ink (_dark_ink) is inverted."""
    plane = _shading(grey)
    if plane is not None:
        return _ink_on_shaded_paper(grey, plane, name)
    if grey.dtype == np.uint8:
        return _ink_of_levels(grey, name)
    frame = _frame(grey)                                  # (2W + 2H - 4,)
    background = float(np.median(frame))
    # The frame's own noise, as a standard deviation (1.4826 x the median absolute deviation, which a
    # stroke crossing the frame does not disturb). Five of them: a 12-megapixel photo then has well under
    # one background pixel above the threshold, so grain does not stretch the crop to the whole picture.
    sigma = 1.4826 * float(np.median(np.abs(frame - background)))
    threshold = max(NOISE, 5 * sigma)
    dark = _one_sided(background, threshold)
    if dark is None:
        dark = _dark_ink(((grey[r] - background, None) for r in _rows(len(grey))), threshold, background)
    ink = _stand_out(grey, background, threshold, dark)  # (H, W)
    if not ink.any():
        raise _blank(name, threshold)
    return ink[_extent(ink)]


def _dark_ink(blocks, threshold, paper):
    """Whether the ink is darker than the paper: the pixels darker than the background by the threshold or
    more outweigh those lighter by as much, each weighing how far it stands out.
    blocks: pairs (d, counts): d how far each pixel lies above the background, a few rows at a time (no
    full-size temporary), counts None; or d for each of the 256 grey levels, and how many pixels have it.
    paper: the background's level, which decides when nothing outweighs (no ink either way): paper over
    mid-grey is taken to be light.

    The evidence decides, not the paper's level alone: a dim photo of a page has paper well under mid-grey
    and ink darker still, and a digit on a grey screen may be lighter or darker than it."""
    dark = light = 0.0
    for d, counts in blocks:
        weighed = d * counts if counts is not None else d    # float64 with counts, else float32
        dark -= float(weighed[d <= -threshold].sum(dtype=np.float64))
        light += float(weighed[d >= threshold].sum(dtype=np.float64))
    return dark > light if dark != light else paper > 0.5


def _one_sided(background, threshold):
    """On even paper that leaves room for ink on one side only (nothing lies threshold or more below a
    background under the threshold, or above one over 1 - threshold): whether that ink is dark; else None,
    and _dark_ink weighs the evidence. It answers as _dark_ink would, without a pass over the pixels."""
    if background < threshold:
        return False
    if background > 1 - threshold:
        return True
    return None


def _rows(H, step=256):
    """The row ranges that cover H rows, step at a time."""
    return [slice(top, min(top + step, H)) for top in range(0, H, step)]


def _frame(a):
    """The outer frame of a 2-D array, every pixel once: first row, last row, then the first and last columns
    between them. (2W + 2H - 4,)"""
    return np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])


def _stand_out(grey, background, threshold, dark):
    """How far each pixel stands out from the background, inverted when the ink is dark; 0 below threshold."""
    if dark:
        grey, background = 1 - grey, 1 - background
    ink = grey - background                               # what stands out; below 0 is not ink
    ink[ink < threshold] = 0                              # paper grain, JPEG ringing: not ink
    return ink


def _shading(grey):
    """The light on the paper as a plane, B(i, j) = a + b i + c j (row i, column j, on the 0..1 scale), fitted to
    the frame; or None when the paper is evenly lit: the plane changes by less than SHADING across the picture.

    A photo of a page is often lit from one side, so its paper runs from dark to light. One background level
    for the whole frame then makes the dark side look like ink, or, through the frame's spread, raises the
    noise threshold above the ink itself. The plane is fitted by least squares, not to the frame's pixels but
    to the medians of SEGMENTS runs along each side: a stroke that crosses the frame is narrower than a run,
    so it moves no median, as it moves no pixel of a median level; a stroke as wide as half a run does, and
    the fit is made again without the quarter of the runs farthest from the first plane. Runs at pure black
    or white are left out (a camera clips light past its range; the plane goes on past it). Every run kept
    must then lie within SHADING of the plane: a frame that is no plane of light (ink along much of the
    border, a shadow's sharp edge) keeps its one level, the median, as on even paper."""
    H, W = grey.shape
    if min(H, W) < 2 * SEGMENTS:                          # too small to be a photo; no runs to take medians of
        return None
    rows, cols = grey[[0, -1]], grey[:, [0, -1]].T        # (2, W) top and bottom; (2, H) left and right
    if rows.min() == rows.max() == cols.min() == cols.max():
        return None                                       # a frame of one level (the page's pad): even
    v, i, j = [], [], []                                  # each run's median level, and its centre (i, j)
    for lines, length, across in ((rows, W, (0, H - 1)), (cols, H, (0, W - 1))):
        m = length // SEGMENTS                            # SEGMENTS runs of m pixels, centred on the side
        start = (length - SEGMENTS * m) // 2
        runs = _levels(lines[:, start : start + SEGMENTS * m]).reshape(2, SEGMENTS, m)
        along = np.tile(start + m * np.arange(SEGMENTS) + (m - 1) / 2, 2)        # (2 SEGMENTS,)
        at = np.repeat(across, SEGMENTS)                                         # (2 SEGMENTS,)
        v.append(np.median(runs, axis=2).ravel())
        i.append(at if lines is rows else along)
        j.append(along if lines is rows else at)
    v, i, j = (np.concatenate(x).astype(np.float64) for x in (v, i, j))   # (4 SEGMENTS,) each
    A = np.stack([np.ones_like(i), i, j], axis=1)         # (4 SEGMENTS, 3)
    measured = (v > 1 / 255) & (v < 254 / 255)            # a run at black or white says nothing of the light:
    if measured.sum() < 2 * SEGMENTS:                     # the camera clipped it (or it is ink on the pad)
        return None
    A, v = A[measured], v[measured]
    (a, b, c), *_ = np.linalg.lstsq(A, v, rcond=None)
    keep = np.argsort(np.abs(A @ (a, b, c) - v))[: 3 * len(v) // 4]    # without the quarter farthest from it
    (a, b, c), *_ = np.linalg.lstsq(A[keep], v[keep], rcond=None)
    if np.abs(A[keep] @ (a, b, c) - v[keep]).max() > SHADING:
        return None           # the frame is no plane of light (ink along much of the border, a shadow's edge)
    change = abs(b) * (H - 1) + abs(c) * (W - 1)          # from the darkest corner to the lightest
    return (a, b, c) if change >= SHADING else None


def _ink_on_shaded_paper(grey, plane, name):
    """_ink with the background a plane B(i, j) = a + b i + c j (_shading).

    Which pixels are ink is decided as on even paper, by how far they stand out from the paper where they
    lie, |g - B| >= the threshold: the camera's grain is added to the light, so it is the same in the shade
    as in the light, and the frame's spread about the plane measures it. How much ink a pixel holds depends
    on the ink. Dark ink (_dark_ink) reflects a fixed share of the light that falls on it, and the camera
    records the light times what the surface reflects, g = B r: a stroke in the shade stands out less than
    the same stroke in the light. Its ink is the share of the light it takes away, (B - g) / B = 1 - g / B,
    the same along the whole stroke. Light ink (chalk on a board, a digit on a screen) is what it adds to the
    background, g - B."""
    a, b, c = plane
    H, W = grey.shape

    def paper(i, j):                          # what the camera records of the paper: the light, clipped to 0..1
        return np.clip(a + b * i + c * j, 0, 1).astype(np.float32)

    def above(r, k=slice(None)):                                            # g - B, rows r and columns k
        return _levels(grey[r, k]) - paper(np.arange(H)[r, None], np.arange(W)[None, k])

    def ink_of(r, k=slice(None)):                                           # the ink of rows r, columns k
        d = above(r, k) if not dark else -above(r, k)
        if not dark:
            return np.where(d >= threshold, d, 0).astype(np.float32, copy=False)   # g - B
        B = paper(np.arange(H)[r, None], np.arange(W)[None, k])
        return np.where(d >= threshold, d / np.maximum(B, 1 / 255), 0).astype(np.float32, copy=False)  # 1 - g/B

    i = _frame(np.broadcast_to(np.arange(H)[:, None], (H, W)))              # each frame pixel's row
    j = _frame(np.broadcast_to(np.arange(W)[None, :], (H, W)))              # and column
    frame = _levels(_frame(grey)) - paper(i, j)
    sigma = 1.4826 * float(np.median(np.abs(frame - np.median(frame))))    # the frame's spread about B
    threshold = max(NOISE, 5 * sigma)
    dark = _dark_ink(((above(r), None) for r in _rows(H)), threshold, float(paper((H - 1) / 2, (W - 1) / 2)))
    # Where the ink is, 256 rows at a time (B is never made for the whole picture, nor is the ink): the rows
    # and the columns that hold any, then the ink of their bounding box only.
    inked_rows, inked_cols = np.zeros(H, bool), np.zeros(W, bool)          # (H,), (W,)
    for r in _rows(H):
        inked = ink_of(r) > 0                                               # (rows, W) bool
        inked_rows[r], inked_cols = inked.any(axis=1), inked_cols | inked.any(axis=0)
    if not inked_rows.any():
        raise _blank(name, threshold)
    rows, cols = np.flatnonzero(inked_rows), np.flatnonzero(inked_cols)
    top, bottom, k = rows[0], rows[-1] + 1, slice(cols[0], cols[-1] + 1)
    ink = np.empty((bottom - top, k.stop - k.start), np.float32)           # (h, w) the bounding box
    for r in _rows(bottom - top):
        ink[r] = ink_of(slice(top + r.start, top + r.stop), k)
    return ink


def _blank(name, threshold):
    if threshold >= 0.5:
        return ImageError(f"{name}: the border of the picture is too uneven to tell the paper from the ink; "
                          f"photograph the digit on plain paper, or crop it leaving a margin of paper around it")
    noisy = " (the picture is grainy, so faint ink does not count)" if threshold > NOISE else ""
    return ImageError(f"{name}: is blank: no ink found (nothing differs from the background by "
                      f"{threshold:.0%} or more{noisy}); draw a digit darker or lighter than its background")


LEVELS = np.arange(256, dtype=np.float32) / 255          # (256,) a uint8 picture's grey levels, as _scale makes them


def _levels(grey):
    """Grey values on the 0..1 scale as float32: a uint8 picture's through LEVELS, the very numbers _scale
    would have made of them, so both kinds of picture give the same result to the bit."""
    return LEVELS[grey] if grey.dtype == np.uint8 else grey.astype(np.float32, copy=False)


def _ink_of_levels(grey8, name):
    """_ink for a uint8 picture, with the same result to the bit in half the time (measured on the web page's
    280x280 pad, which it sends several times a second while the pen moves).

    A uint8 picture has only 256 grey levels, so the work is done on the levels rather than on the pixels:
    the frame's two medians come from its histogram, and _stand_out makes a table of the ink of each level,
    with the same float32 operations _ink does on every pixel. The ink grows with the level (or shrinks, when
    the background is light), so the inked pixels are those past one level: one comparison of bytes finds
    the bounding box, and only the box is turned into floats and measured against the background."""
    frame = _frame(grey8)                                 # (2W + 2H - 4,) uint8
    counts = np.bincount(frame, minlength=256)            # (256,) how many frame pixels have each level
    background = float(_median_of_levels(LEVELS, counts))
    sigma = 1.4826 * float(_median_of_levels(np.abs(LEVELS - background), counts))
    threshold = max(NOISE, 5 * sigma)
    dark = _one_sided(background, threshold)
    if dark is None:   # (256,) pixels per level: np.bincount's answer, from Pillow's histogram 10x faster
        per_level = np.array(Image.fromarray(grey8).histogram())
        dark = _dark_ink([(LEVELS - background, per_level)], threshold, background)
    table = _stand_out(LEVELS, background, threshold, dark)   # (256,) the ink of each level
    inked = np.flatnonzero(table)                         # the levels that count as ink: one end of 0..255
    if inked.size == 0:
        raise _blank(name, threshold)
    level = int(inked[-1] if dark else inked[0])          # a Python int: compared as uint8, not int64
    is_ink = grey8 <= level if dark else grey8 >= level   # (H, W) bool
    if not is_ink.any():
        raise _blank(name, threshold)
    crop = grey8[_extent(is_ink)].astype(np.float32) / 255   # (h, w) float32, as _scale makes it
    return _stand_out(crop, background, threshold, dark)


def _median_of_levels(values, counts):
    """np.median(np.repeat(values, counts)), without making that array: the middle value, or the mean of the
    middle two (as np.median computes it, in the values' dtype), of values[i] counted counts[i] times."""
    order = np.argsort(values, kind="stable")
    seen = np.cumsum(counts[order])                       # how many values are <= each, in sorted order
    n = int(seen[-1])
    middle = order[np.searchsorted(seen, [(n - 1) // 2, n // 2], side="right")]   # one value twice when n is odd
    return np.mean(values[middle])


def _extent(image):
    """The smallest box around every non-zero pixel of a 2-D image that has one, as (row slice, column slice).
    From the rows and columns that hold ink: two reductions, instead of listing every ink pixel."""
    rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _fit(digit):
    """Scale the cropped ink so that its longer side is BOX pixels, keeping the aspect ratio.

    The crop is first padded to a square, centred, and the square is scaled to BOX x BOX. Rounding the
    shorter side to whole pixels instead would make the result jump: a 214- or a 217-pixel-wide crop of a
    299-pixel-tall digit would come out 14 or 15 pixels wide."""
    h, w = digit.shape
    n = max(h, w)
    square = np.zeros((n, n), np.float32)                 # (n, n)
    top, left = (n - h) // 2, (n - w) // 2
    square[top : top + h, left : left + w] = digit
    method = Image.Resampling.BOX if n > BOX else Image.Resampling.BILINEAR
    scaled = Image.fromarray(square).resize((BOX, BOX), method)   # mode F: full precision, no 8-bit rounding
    if not np.asarray(scaled).any():
        # Pillow's BOX weighs each pixel by where its centre falls: a line one pixel thin whose centre lies on
        # the border between two of the result's pixels counts for neither. BILINEAR's wider tent keeps it.
        scaled = Image.fromarray(square).resize((BOX, BOX), Image.Resampling.BILINEAR)
    scaled = np.clip(np.asarray(scaled), 0, 1)            # (20, 20); clip: float rounding at the edges
    return scaled[_extent(scaled)]      # the padding stays exactly 0: trim it off again, so _centre sees the ink


def _centre(digit):
    """Paste into SIZE x SIZE so that the centre of mass lands on (CENTRE, CENTRE), to the nearest pixel.

    Centre of mass:  r_c = sum_ij i x_ij / sum_ij x_ij,  c_c = sum_ij j x_ij / sum_ij x_ij.
    An integer shift, as MNIST's (its centres of mass all lie within half a pixel of 14): a subpixel shift
    would resample the digit a second time and blur it."""
    h, w = digit.shape
    mass = digit.sum()
    r_c = (digit.sum(axis=1) @ np.arange(h)) / mass
    c_c = (digit.sum(axis=0) @ np.arange(w)) / mass
    # floor(x + 0.5) rounds halves up, the same way on both axes (Python's round() would round to even).
    top = min(max(int(np.floor(CENTRE - r_c + 0.5)), 0), SIZE - h)    # clamped: no ink falls off the field
    left = min(max(int(np.floor(CENTRE - c_c + 0.5)), 0), SIZE - w)
    out = np.zeros((SIZE, SIZE), np.float32)              # (28, 28)
    out[top : top + h, left : left + w] = digit
    return out
