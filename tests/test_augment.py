"""Augmentation: shapes, dtypes, range and row order kept; identity parameters change nothing; a seed fixes the
batch; the sampler, the affine maps and the Gaussian blur against slow references; one-line errors; and
`numpynn augment-preview` as a user runs it."""
import dataclasses
import math
import pathlib
import re

import numpy as np
import pytest
from PIL import Image

from numpynn import augment

from .conftest import run_cli

AFFINE = dict(shift=2.0, rotation=12.0, scale=0.1, shear=10.0)
ELASTIC = dict(alpha=34.0, sigma=4.0)
TRANSFORMS = [(augment.affine, AFFINE), (augment.elastic, ELASTIC)]
IDS = ["affine", "elastic"]


def digits(N=16, side=28, dtype=np.float32, seed=0):
    """N rows of side * side pixels in [0, 1]: a bright random blob in the middle of each black image, and one
    pixel exactly 1, as a real digit has."""
    rng = np.random.default_rng(seed)
    images = np.zeros((N, side, side))
    lo, hi = side // 4, side - side // 4
    images[:, lo:hi, lo:hi] = rng.random((N, hi - lo, hi - lo))
    images[:, side // 2, side // 2] = 1.0
    return images.reshape(N, -1).astype(dtype)


@pytest.mark.parametrize("transform, params", TRANSFORMS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_dtype_and_range_are_kept_and_the_digits_change(transform, params, dtype):
    X = digits(dtype=dtype)
    before = X.copy()
    Y = transform(X, np.random.default_rng(0), **params)
    assert Y.shape == X.shape and Y.dtype == X.dtype
    assert Y.min() >= 0 and Y.max() <= 1 and np.isfinite(Y).all()
    assert np.array_equal(X, before)  # the input is not touched
    assert (np.abs(Y - X).max(axis=1) > 0.1).all()  # every image really moved
    # Bilinear weights sum to 1, so ink is roughly conserved: no image goes blank or floods with white.
    assert np.allclose(Y.sum(axis=1) / X.sum(axis=1), 1, atol=0.35)


@pytest.mark.parametrize("transform, params", TRANSFORMS, ids=IDS)
def test_each_row_is_a_transform_of_the_same_row_so_labels_still_match(transform, params):
    """Row k of the output depends on row k of the input only: blanking input row 5 blanks output row 5 and
    leaves every other output row bit for bit as it was (same seed, same draws)."""
    X = digits()
    Y = transform(X, np.random.default_rng(1), **params)
    X[5] = 0
    Y_blank = transform(X, np.random.default_rng(1), **params)
    assert np.array_equal(np.delete(Y_blank, 5, axis=0), np.delete(Y, 5, axis=0))
    assert not Y_blank[5].any() and Y[5].any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_identity_parameters_return_the_input_exactly(dtype):
    X = digits(dtype=dtype)
    rng = np.random.default_rng(0)
    assert np.array_equal(augment.affine(X, rng, shift=0, rotation=0, scale=0, shear=0), X)
    assert np.array_equal(augment.elastic(X, rng, alpha=0, sigma=4), X)
    rows, cols = augment.affine_maps(np.eye(2)[None], np.zeros((1, 2)), 5)
    assert np.array_equal(rows[0], np.arange(5)[:, None] + 0 * cols[0]) and np.array_equal(cols[0].T, rows[0])


@pytest.mark.parametrize("transform, params", TRANSFORMS, ids=IDS)
def test_the_same_seed_gives_the_same_batch_and_another_seed_another(transform, params):
    X = digits()
    a = transform(X, np.random.default_rng(7), **params)
    b = transform(X, np.random.default_rng(7), **params)
    c = transform(X, np.random.default_rng(8), **params)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    # One generator, two batches: the second draw differs from the first (the state moves on).
    rng = np.random.default_rng(7)
    assert not np.allclose(transform(X, rng, **params), transform(X, rng, **params))


@pytest.mark.parametrize("dr, dc", [(2, -3), (-1, 0), (0, 4), (27, 0)])
def test_an_integer_shift_moves_the_pixels_and_fills_with_zeros(dr, dc):
    image = np.random.default_rng(0).random((28, 28))
    rows, cols = augment.affine_maps(np.eye(2)[None], np.array([[dr, dc]], float), 28)
    shifted = augment.bilinear(image[None], rows, cols)[0]
    expected = np.zeros_like(image)  # expected[i, j] = image[i - dr, j - dc], 0 where that is off the image
    expected[max(dr, 0) : 28 + min(dr, 0), max(dc, 0) : 28 + min(dc, 0)] = \
        image[max(-dr, 0) : 28 - max(dr, 0), max(-dc, 0) : 28 - max(dc, 0)]
    assert np.array_equal(shifted, expected)


@pytest.mark.parametrize("side", [5, 28])
def test_a_quarter_turn_about_the_centre_is_np_rot90(side):
    image = np.random.default_rng(1).random((side, side))  # no symmetry: a wrong turn or flip shows
    theta = math.pi / 2
    R = np.array([[[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]]])
    turned = augment.bilinear(image[None], *augment.affine_maps(R, np.zeros((1, 2)), side))[0]
    np.testing.assert_allclose(turned, np.rot90(image), atol=1e-12)  # cos(pi / 2) is 6e-17, not 0
    # random_affine turns the same way: with only a rotation of exactly +-90 degrees allowed, u = +-1 ...
    A, _ = augment.random_affine(1, _FixedDraws([0, 0, 1, 0, 0]), shift=0, rotation=90, scale=0, shear=0)
    np.testing.assert_allclose(A, R, atol=1e-15)


class _FixedDraws:
    """A stand-in generator whose uniform(-1, 1, shape) returns the given numbers."""

    def __init__(self, values):
        self.values = np.asarray(values, float)

    def uniform(self, low, high, shape):
        return self.values.reshape(shape)


def test_random_affine_composes_rotation_shear_and_scale_as_documented():
    u = [0.5, -1.0, 0.25, -0.5, 1.0]  # shift rows, shift cols, rotation, scale, shear, as fractions of the range
    A, t = augment.random_affine(1, _FixedDraws(u), shift=2, rotation=40, scale=0.2, shear=30)
    theta, s, k = math.radians(10), 0.9, math.tan(math.radians(30))
    R = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    np.testing.assert_allclose(A[0], R @ np.array([[1, 0], [k, 1]]) * s, rtol=1e-12)
    np.testing.assert_allclose(t[0], [1.0, -2.0])
    # ... and affine_maps inverts it: mapping the sampled points forward gives back the output grid.
    rows, cols = augment.affine_maps(A, t, 6)
    m = 2.5
    q = np.einsum("ab,bij->aij", A[0], np.stack([rows[0] - m, cols[0] - m])) + m + t[0].reshape(2, 1, 1)
    np.testing.assert_allclose(q[0], np.arange(6)[:, None] + np.zeros(6), atol=1e-12)
    np.testing.assert_allclose(q[1], np.arange(6)[None, :] + np.zeros((6, 1)), atol=1e-12)


def bilinear_reference(image, r, c):
    """One point, the slow way: the four pixels around (r, c), each weighted by the area of the opposite
    rectangle, pixels off the image counted as 0."""
    H, W = image.shape
    r0, c0 = math.floor(r), math.floor(c)
    value = 0.0
    for i in (r0, r0 + 1):
        for j in (c0, c0 + 1):
            if 0 <= i < H and 0 <= j < W:
                value += (1 - abs(r - i)) * (1 - abs(c - j)) * image[i, j]
    return value


def test_the_bilinear_sampler_agrees_with_a_per_pixel_loop():
    rng = np.random.default_rng(2)
    images = rng.random((3, 4, 5))
    # Points everywhere: inside, on the edges, just outside, far outside, and exactly on pixel centres.
    rows = rng.uniform(-3, 7, (3, 6, 7))
    cols = rng.uniform(-3, 8, (3, 6, 7))
    rows[0, 0, :5], cols[0, 0, :5] = [0, 3, -1, 4, 2], [0, 4, 2, 1, -1]
    rows[1, 1, :3], cols[1, 1, :3] = [3.5, -0.5, 1.25], [4.5, 2, -0.75]
    out = augment.bilinear(images, rows, cols)
    expected = np.array([[[bilinear_reference(images[n], rows[n, i, j], cols[n, i, j]) for j in range(7)]
                          for i in range(6)] for n in range(3)])
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-15)
    assert out[0, 0, 0] == images[0, 0, 0] and out[0, 0, 1] == images[0, 3, 4]  # on a centre: that pixel
    assert out[0, 0, 2] == 0 and out[0, 0, 3] == 0  # a whole pixel off the image


@pytest.mark.parametrize("side, sigma", [(7, 1.5), (10, 4.0), (6, 0.3)])
def test_the_gaussian_blur_is_a_direct_2d_convolution_with_zeros_outside(side, sigma):
    F = np.random.default_rng(3).uniform(-1, 1, (side, side))
    G = augment.gaussian_matrix(side, sigma)
    blurred = G @ F @ G.T
    # The reference: a (2 side - 1)^2 Gaussian kernel exp(-(a^2 + b^2) / (2 sigma^2)), normalised to sum 1,
    # slid over F padded with zeros.
    d = np.arange(-(side - 1), side)
    kernel = np.exp(-(d[:, None] ** 2 + d[None, :] ** 2) / (2 * sigma**2))
    kernel /= kernel.sum()
    padded = np.pad(F, side - 1)
    expected = np.array([[(kernel * padded[i : i + 2 * side - 1, j : j + 2 * side - 1]).sum()
                          for j in range(side)] for i in range(side)])
    np.testing.assert_allclose(blurred, expected, rtol=1e-10, atol=1e-14)
    # The batched form used by elastic_maps blurs every field of a batch the same way.
    batch = np.stack([F, 2 * F, -F])
    np.testing.assert_allclose(G @ batch @ G.T, [blurred, 2 * blurred, -blurred], rtol=1e-12, atol=1e-14)


def test_simards_defaults_move_a_pixel_about_one_and_a_half_pixels():
    """What the docstrings and help text promise for alpha = 34, sigma = 4: a displacement whose standard
    deviation is about 1.4 pixels on each axis (in the middle of the image; zeros outside pull it down at the
    edges)."""
    rows, cols = augment.elastic_maps(2000, 28, np.random.default_rng(0), alpha=34, sigma=4)
    dr = rows - np.arange(28)[:, None]
    dc = cols - np.arange(28)[None, :]
    middle = (slice(None), slice(10, 18), slice(10, 18))
    assert 1.2 < dr[middle].std() < 1.6 and 1.2 < dc[middle].std() < 1.6
    assert abs(dr.mean()) < 0.05 and abs(dc.mean()) < 0.05


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda X, rng: augment.affine(X, rng, **{**AFFINE, "shift": -1}), "shift = -1 is out of range"),
        (lambda X, rng: augment.affine(X, rng, **{**AFFINE, "rotation": 181}), "rotation = 181 is out of range"),
        (lambda X, rng: augment.affine(X, rng, **{**AFFINE, "scale": 1.0}), r"scale = 1\.0 is out of range"),
        (lambda X, rng: augment.affine(X, rng, **{**AFFINE, "shear": float("nan")}), "shear = nan is out of range"),
        (lambda X, rng: augment.affine(X, rng, **{**AFFINE, "shift": True}), "shift = True is out of range"),
        (lambda X, rng: augment.elastic(X, rng, alpha=-2, sigma=4), "alpha = -2 is out of range"),
        (lambda X, rng: augment.elastic(X, rng, alpha=34, sigma=0), "sigma = 0 is out of range"),
        (lambda X, rng: augment.elastic(X, rng, alpha=float("inf"), sigma=4), "alpha = inf is out of range"),
        (lambda X, rng: augment.elastic(X[:, :780], rng, **ELASTIC), "D = 780 is out of range: .*square"),
        (lambda X, rng: augment.elastic(X[0], rng, **ELASTIC), r"X.shape = \(784,\) is out of range: .*\(N, D\)"),
        (lambda X, rng: augment.affine(X * 255, rng, **AFFINE), r"X's range = .* augmentation works on .*\[0, 1\]"),
        (lambda X, rng: augment.affine((X * 255).astype(np.uint8), rng, **AFFINE), "X.dtype = .*uint8"),
    ],
)
def test_bad_parameters_and_inputs_get_one_line_errors(call, message):
    with pytest.raises(ValueError, match=message) as error:
        call(digits(), np.random.default_rng(0))
    assert "\n" not in str(error.value)


def test_an_empty_batch_is_fine():
    X = np.zeros((0, 784), np.float32)
    assert augment.affine(X, np.random.default_rng(0), **AFFINE).shape == (0, 784)
    assert augment.elastic(X, np.random.default_rng(0), **ELASTIC).shape == (0, 784)


# --- numpynn augment-preview --------------------------------------------------------------------------------

run = run_cli  # (exit code, stdout, stderr) of `numpynn ARGV...`, from conftest


def read_cells(path, n, rows):
    """The PNG back as (rows + 1, n, 28, 28) uint8 cells, undoing the preview's layout (3x pixels, 2-pixel gaps)."""
    pixels = np.asarray(Image.open(path))
    assert pixels.shape == (3 * ((rows + 1) * 30 + 2), 3 * (n * 30 + 2))
    pixels = pixels[::3, ::3]
    return np.array([[pixels[2 + 30 * r : 30 + 30 * r, 2 + 30 * c : 30 + 30 * c] for c in range(n)]
                     for r in range(rows + 1)])


def centre_of_mass(image):
    rows, cols = np.indices(image.shape)
    return np.array([(rows * image).sum(), (cols * image).sum()]) / image.sum()


@pytest.mark.parametrize("kind", ["affine", "elastic"])
def test_augment_preview_draws_originals_above_augmented_versions(tmp_path, tiny_mnist, capsys, kind):
    from numpynn.data import load_raw

    out = tmp_path / "grid.png"
    code, stdout, err = run(capsys, "augment-preview", "--data", tiny_mnist, "--augment", kind, "--n", 5,
                            "--rows", 3, "--out", out)
    assert code == 0, err
    assert stdout.startswith(f"{out}: 5 training digits (top row) and 3 rows of {kind} augmentations")
    cells = read_cells(out, 5, 3)
    x_train = load_raw("mnist", tiny_mnist, progress=False)[0]
    for c in range(5):
        original = cells[0, c]
        matches = [k for k in range(len(x_train)) if np.array_equal(x_train[k], original)]
        assert matches, "a top-row cell is not a training digit as it is"
        for r in range(1, 4):  # below it: changed, but still that digit's ink, in about the same place
            augmented = cells[r, c]
            assert not np.array_equal(augmented, original)
            assert 0.5 < augmented.sum() / original.sum() < 2
            assert np.linalg.norm(centre_of_mass(augmented) - centre_of_mass(original)) < 6
    # The same seed draws the same picture; another seed another.
    run(capsys, "augment-preview", "--data", tiny_mnist, "--augment", kind, "--n", 5, "--rows", 3,
        "--out", tmp_path / "again.png")
    run(capsys, "augment-preview", "--data", tiny_mnist, "--augment", kind, "--n", 5, "--rows", 3, "--seed", 1,
        "--out", tmp_path / "other.png")
    assert (tmp_path / "again.png").read_bytes() == out.read_bytes()
    assert (tmp_path / "other.png").read_bytes() != out.read_bytes()


def test_augment_preview_parameters_change_the_picture(tmp_path, tiny_mnist, capsys):
    """--augment-alpha 0 makes elastic the identity: every row repeats the originals."""
    out = tmp_path / "still.png"
    code, stdout, err = run(capsys, "augment-preview", "--data", tiny_mnist, "--augment", "elastic",
                            "--augment-alpha", 0, "--n", 4, "--rows", 2, "--out", out)
    assert code == 0, err
    assert "(alpha 0, sigma 4)" in stdout
    cells = read_cells(out, 4, 2)
    assert np.array_equal(cells[1], cells[0]) and np.array_equal(cells[2], cells[0])


@pytest.mark.parametrize(
    "argv, code, needle",
    [
        (["--augment-shift", "-1"], 2, "--augment-shift = -1.0 is out of range"),
        (["--augment-sigma", "0"], 2, "--augment-sigma = 0.0 is out of range"),
        (["--augment-rotation", "nan"], 2, "--augment-rotation = nan is out of range"),
        (["--augment", "none"], 2, "--augment: invalid choice"),
        (["--n", "0"], 2, "--n = 0 is out of range"),
        (["--rows", "100"], 2, "--rows = 100 is out of range"),
        (["--seed", "-1"], 2, "--seed = -1 is out of range"),
        (["--n", "many"], 2, "--n: invalid int value"),
        (["--out", "grid.jpg"], 2, "give a name ending in .png"),
        (["--out", "missing/grid.png"], 2, "no such folder"),
        (["--out", "a-folder.png"], 2, "a folder or other non-regular file is there"),  # before any work
        (["--data", "no-data-here"], 1, "does not exist"),
    ],
)
def test_augment_preview_bad_input_gets_one_line_and_writes_nothing(tmp_path, tiny_mnist, capsys, monkeypatch,
                                                                   argv, code, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-folder.png").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    defaults = {"--data": str(tiny_mnist), "--out": "grid.png"}
    for flag in argv[::2]:
        defaults.pop(flag, None)
    got, out, err = run(capsys, "augment-preview", *argv, *[x for pair in defaults.items() for x in pair])
    assert got == code
    assert err.startswith("numpynn: error: ") and err.count("\n") == 1 and needle in err, err
    assert out == "" and sorted(p.name for p in tmp_path.iterdir()) == before  # no picture, no temp file


def test_numpynn_train_augments_and_resumes_bit_for_bit(tmp_path, tiny_mnist, capsys):
    """The command line end to end: 3 epochs straight == 2 epochs, then --resume with --epochs 3 (a constant
    schedule, which does not depend on the run's length)."""
    from numpynn import serialize

    flags = ["train", "--data", tiny_mnist, "--augment", "elastic", "--augment-alpha", "20", "--hidden", "16",
             "--batch-size", "16", "--dev-size", "20", "--schedule", "constant", "--quiet"]
    code, _, err = run(capsys, *flags, "--epochs", 3, "--out", tmp_path / "straight.npz")
    assert code == 0, err
    code, _, err = run(capsys, *flags, "--epochs", 2, "--out", tmp_path / "half.npz")
    assert code == 0, err
    code, _, err = run(capsys, "train", "--data", tiny_mnist, "--resume", tmp_path / "half.ckpt.npz", "--epochs", 3,
                       "--quiet", "--out", tmp_path / "resumed.npz")
    assert code == 0, err
    straight, header = serialize.load(tmp_path / "straight.npz")
    resumed, _ = serialize.load(tmp_path / "resumed.npz")
    assert (header["config"]["augment"], header["config"]["augment_alpha"]) == ("elastic", 20.0)
    assert straight.keys() == resumed.keys()
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name])


# --- the docs say what the code does --------------------------------------------------------------------------

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


def test_the_option_table_in_docs_training_md_matches_trainconfig():
    from numpynn.train import TrainConfig

    text = (DOCS / "training.md").read_text(encoding="utf-8")
    table = text[text.index("| option | default | what it does |") :].split("\n\n")[0]
    rows = dict(re.findall(r"^\| `--(augment[a-z-]*)` \| `?([^`|]+?)`? \|", table, flags=re.M))
    expected = {f.name.replace("_", "-"): str(f.default) for f in dataclasses.fields(TrainConfig)
                if f.name.startswith("augment")}
    assert rows == expected


@pytest.mark.mnist
@pytest.mark.parametrize("kind", ["affine", "elastic"])
def test_the_committed_pictures_are_what_the_documented_command_draws(tmp_path, mnist_dir, capsys, kind):
    code, _, err = run(capsys, "augment-preview", "--augment", kind, "--data", mnist_dir, "--out", tmp_path / "p.png")
    assert code == 0, err
    drawn = np.asarray(Image.open(tmp_path / "p.png"), dtype=int)
    committed = np.asarray(Image.open(DOCS / "img" / f"augment-{kind}.png"), dtype=int)
    assert drawn.shape == committed.shape
    assert np.abs(drawn - committed).max() <= 1  # one grey level of slack for another machine's rounding
