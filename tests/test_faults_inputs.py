"""Issue 40, the input side: hostile image files (truncated, decompression bombs) are refused by
name before any work, and pixels on the wrong scale (floats already in 0..1) are refused with
the way to pass them, by the CLI and the API."""

import json
import os
import re
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from conftest import REPO, TINY, one_line_exit_2, tiny_model
from PIL import Image

import anomaly_toolbox as atb
from anomaly_toolbox.data import folders, inputs as inputs_lib
from anomaly_toolbox.errors import UsageError
from anomaly_toolbox.run import export, training

CAP = "at most 16,777,216 pixels"


def tools(*commands, cwd):
    """[(exit code, stdout, stderr)] of `python -m anomaly_toolbox.<module> args...` for each
    (module, *args), run side by side (each child imports TensorFlow: seconds)."""
    env = {**os.environ, "PYTHONPATH": REPO}
    procs = [subprocess.Popen([sys.executable, "-m", f"anomaly_toolbox.{module}", *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                              cwd=str(cwd)) for module, *args in commands]
    outputs = [p.communicate() for p in procs]
    return [(p.returncode, *output) for p, output in zip(procs, outputs)]


def tool(module, *args, cwd):
    """Exit code and stderr of one `python -m anomaly_toolbox.<module> args`."""
    code, _, err = tools((module, *args), cwd=cwd)[0]
    return code, err


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path, side):
    """A valid all-black 1-bit PNG of side x side pixels: 27 KB on disk at 15,000 (225 Mpx)."""
    row, z = b"\0" * (1 + (side + 7) // 8), zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1,
                                                                        0, 0, 0, 0))
                     + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def bad_zlib_png(path):
    """28x28 grey PNG whose chunk CRCs are right but whose pixel stream is not zlib: PIL's
    verify() passes it, only decoding finds it."""
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0,
                                                                        0, 0, 0))
                     + _chunk(b"IDAT", b"\x78\x9c" + bytes(range(200))) + _chunk(b"IEND", b""))


def truncated(path, fmt):
    """A real 28x28 image, cut to 60 % of its bytes."""
    image = np.random.default_rng(0).integers(0, 255, (28, 28), np.uint8)
    Image.fromarray(image).save(path, fmt)
    path.write_bytes(path.read_bytes()[:int(path.stat().st_size * 0.6)])


def digit_folder(root, images, with_test=True):
    """root/train/ (8 digits) and, with_test, test/normal/ and test/anomalous/ (4 each): every
    train/ file is then streamed, none read in memory by load_splits."""
    for sub, part in [("train", images[:8])] + ([("test/normal", images[8:12]),
                                                 ("test/anomalous", images[12:16])]
                                                if with_test else []):
        (root / sub).mkdir(parents=True)
        for i, image in enumerate(part):
            Image.fromarray(image).save(root / sub / f"{i}.png")
    return root


def tiny_config(tmp_path):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"epochs": 1, "batch_size": 4, "model": TINY}))
    return str(path)


# --- folder datasets ---------------------------------------------------------------------------

def test_truncated_png_in_train_is_one_line_before_training(images, tmp_path):
    root = digit_folder(tmp_path / "data", images[0])
    truncated(root / "train" / "5.png", "PNG")
    out = tmp_path / "run"
    code, err = tool("train", "--model=ganomaly", f"--dataset=folder:{root}",
                     f"--config={tiny_config(tmp_path)}", f"--output_dir={out}", cwd=tmp_path)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err, err[-3000:]
    assert lines[-1].startswith(f"error: invalid dataset: '{root / 'train' / '5.png'}' (expected")
    assert [line for line in lines if line.startswith("error:")] == lines[-1:]
    assert not out.exists()  # refused before the run folder was made


SIDES = {"bomb": 15_000, "warned": 10_000, "too_large": 4_097}  # PIL raises, PIL warns, ours


@pytest.mark.parametrize("damage", ["jpeg_truncated", "png_bad_zlib", *SIDES])
def test_every_train_file_is_decoded_or_refused_by_name(images, tmp_path, capsys, recwarn,
                                                        damage):
    root = digit_folder(tmp_path / "data", images[0], with_test=False)
    bad = root / "train" / ("bad.jpg" if damage == "jpeg_truncated" else "bad.png")
    if damage == "jpeg_truncated":
        truncated(bad, "JPEG")
    elif damage == "png_bad_zlib":
        bad_zlib_png(bad)
    else:
        bomb_png(bad, SIDES[damage])
    err = one_line_exit_2(capsys, lambda: folders.load_splits(f"folder:{root}"))
    assert err.startswith(f"error: invalid dataset: '{bad}' (expected ")
    assert (CAP in err) == (damage in SIDES) and not recwarn.list  # not PIL's bomb warning


def test_a_train_file_that_breaks_after_the_check_is_named_mid_training(
        images, tmp_path, capsys, monkeypatch):
    """The streaming pipeline's own decode error (a file changed after verify_images) is the
    same one line, with nothing of the run's result written."""
    root = digit_folder(tmp_path / "data", images[0])
    victim = root / "train" / "3.png"
    checked = folders.verify_images

    def then_broken(paths, argument):
        channels = checked(paths, argument)
        truncated(victim, "PNG")
        return channels

    monkeypatch.setattr(folders, "verify_images", then_broken)
    out = tmp_path / "run"
    err = one_line_exit_2(capsys, lambda: training.fit(
        "ganomaly", f"folder:{root}", 0, str(out), config=tiny_config(tmp_path), verbose=0))
    assert err.startswith(f"error: invalid dataset: '{victim}' (expected a readable image")
    assert not (out / "results.json").exists() and not (out / "saved_model").exists()


# --- scoring: files and arrays -----------------------------------------------------------------

def test_a_bomb_is_refused_by_name_by_score_and_the_api(saved_model, images, tmp_path):
    folder = tmp_path / "new"
    folder.mkdir()
    Image.fromarray(images[0][0]).save(folder / "0.png")
    bomb_png(folder / "1.png", 15_000)
    csv = tmp_path / "s.csv"
    code, err = tool("score", f"--saved_model={saved_model}", f"--input={folder}",
                     f"--output={csv}", cwd=tmp_path)
    assert code == 2 and "Traceback" not in err and not csv.exists(), err[-3000:]
    assert err.strip().splitlines()[-1] == (
        f"error: invalid input: '{folder / '1.png'}' (expected an image of {CAP} (4096 x 4096), "
        f"got 225,000,000 pixels)")
    detector = atb.load(saved_model)
    for path in (folder, folder / "1.png"):
        with pytest.raises(UsageError, match=f"'{folder / '1.png'}'.*{CAP}"):
            detector.score_folder(path)


def test_arrays_over_the_cap_are_refused_before_scoring(saved_model):
    big = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), (1, 4097, 4097), (0, 0, 0))
    with pytest.raises(UsageError, match=f"images of {CAP}"):
        atb.load(saved_model).score(big)


def test_0_to_1_floats_are_refused_by_score_then_rescaled_on_request(saved_model, images,
                                                                     tmp_path):
    x = images[0][:6]
    np.save(tmp_path / "unit.npy", x.astype(np.float32) / 255)
    args = ["score", f"--saved_model={saved_model}", f"--input={tmp_path / 'unit.npy'}"]
    (code, _, err), (rescaled, _, log) = tools(
        [*args, f"--output={tmp_path / 'refused.csv'}"],
        [*args, "--input_range=0..1", f"--output={tmp_path / 's.csv'}"], cwd=tmp_path)
    assert code == 2 and "Traceback" not in err and not (tmp_path / "refused.csv").exists()
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: invalid input: '{tmp_path / 'unit.npy'}'")
    assert "multiply them by 255, or pass --input_range=0..1" in last
    assert rescaled == 0, log[-3000:]
    scores = [float(row.split(",")[1]) for row in (tmp_path / "s.csv").read_text().split()[1:]]
    np.testing.assert_allclose(scores, atb.load(saved_model).score(x), rtol=1e-5)


def test_0_to_1_floats_are_refused_by_the_api_then_rescaled_on_request(saved_model, images):
    detector = atb.load(saved_model)
    assert detector.pixel_range == (0, 255) and detector.metadata["pixel_range"] == [0, 255]
    x = images[0][:6]
    reference = detector.score(x)
    for dtype in (np.float32, np.float64):
        with pytest.raises(UsageError, match='multiply them by 255, or pass input_range="0..1"'):
            detector.score(x.astype(dtype) / 255)
        np.testing.assert_allclose(detector.score(x.astype(dtype) / 255, input_range="0..1"),
                                   reference, rtol=1e-5)
    with pytest.raises(UsageError, match=r'as input_range="0..1" says; got values from 0 to \d+'):
        detector.score(x.astype(np.float32), input_range="0..1")  # declared wrongly
    np.testing.assert_allclose(detector.anomaly_map(x / 255, input_range="0..1"),
                               detector.anomaly_map(x), atol=1e-6)
    assert detector.score(np.zeros((2, 28, 28), np.float32)).shape == (2,)  # black is black


def test_integer_pixels_on_0_to_1_are_dark_pixels_not_a_rescaled_batch(saved_model, images,
                                                                      tmp_path):
    """Only floats can be already scaled to 0..1: a 0/1 int64 mask scores as its uint8 twin
    (it was refused as "float values all lie in 0..1"), by the API and by score."""
    from anomaly_toolbox.data.inputs import read_batches

    detector = atb.load(saved_model)
    mask = (images[0][:4] > 128).astype(np.uint8)
    reference = detector.score(mask)
    for dtype in (np.int32, np.int64, np.uint16):
        np.testing.assert_allclose(detector.score(mask.astype(dtype)), reference, rtol=1e-6)
    np.save(tmp_path / "mask.npy", mask.astype(np.int64))
    (batch,) = read_batches(str(tmp_path / "mask.npy"))[1]  # what score reads
    np.testing.assert_array_equal(batch[..., 0], mask)


def test_0_to_1_floats_declared_0_to_255_are_refused_before_the_graph(saved_model, images):
    """input_range="0..255" skipped the 0..1 check, which the SavedModel's graph then failed
    (InvalidArgumentError; score: a traceback)."""
    detector = atb.load(saved_model)
    with pytest.raises(UsageError, match="these float values all lie in 0..1"):
        detector.score(images[0][:2].astype(np.float32) / 255, input_range="0..255")
    assert detector.score(images[0][:2].astype(np.float32), input_range="0..255").shape == (2,)


@pytest.mark.parametrize("values, model_range, message", [
    (np.linspace(-1, 1, 28 * 28), (0, 255), "got values from -1 to 1"),  # model input, not pixels
    (np.linspace(0, 65535, 28 * 28), (0, 255), "got values from 0 to 65535"),  # 16-bit
    (np.linspace(0, 255, 28 * 28), (0, 1), 'divide by 255, or pass input_range="0..255"'),
])
def test_pixels_off_the_models_scale_are_refused(values, model_range, message):
    from anomaly_toolbox.data.inputs import to_model_range

    with pytest.raises(UsageError, match=message):
        to_model_range(values.reshape(1, 28, 28, 1).astype(np.float32), "images", model_range,
                       None, 'input_range="{}"')


def test_saved_models_without_pixel_range_are_taken_as_0_to_255(tmp_path, images):
    """SavedModels exported before the key: still loaded and scored; 0..1 floats refused."""
    path = str(tmp_path / "old")
    export.save_module(export.ScoringModule(tiny_model("autoencoder"), 1, 0.5,
                                             {"model": "autoencoder", "channels": 1}), path)
    detector = atb.load(path)
    assert "pixel_range" not in detector.metadata and detector.pixel_range == (0, 255)
    assert detector.score(images[0][:2]).shape == (2,)
    with pytest.raises(UsageError, match="0..1"):
        detector.score(images[0][:2] / 255)


def test_help_of_train_and_score_states_the_size_cap(tmp_path):
    assert folders.MAX_PIXELS == 4096 * 4096
    for code, out, err in tools(("train", "--help"), ("score", "--help"), cwd=tmp_path):
        assert code == 0 and "4096 x 4096 pixels" in " ".join(out.split()), err[-2000:]


def test_a_gzipped_idx_declaring_huge_images_is_refused_before_reading(tmp_path, capsys):
    """A gzip bomb: 1 x 20,000 x 20,000 zero bytes are 400 MB read, 0.4 MB on disk."""
    import gzip

    from anomaly_toolbox.data.inputs import read_input

    path = tmp_path / "huge-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">IIII", 0x0803, 1, 20_000, 20_000))
        f.write(bytes(1 << 20) * 2)  # the rest is never read
    err = one_line_exit_2(capsys, lambda: read_input(str(path)))
    assert err == (f"error: invalid input: '{path}' (expected images of {CAP} (4096 x 4096), "
                   f"the IDX header says 20000x20000)")


def test_input_range_is_named_when_bad_or_given_for_files(saved_model, images, tmp_path):
    from anomaly_toolbox.data.inputs import read_batches

    with pytest.raises(UsageError, match=r"invalid input_range: '0-1' \(expected 0..255 or 0..1\)"):
        atb.load(saved_model).score(images[0][:2] / 255, input_range="0-1")
    Image.fromarray(images[0][0]).save(tmp_path / "0.png")
    with pytest.raises(UsageError, match="invalid input_range: '0..1'.*hold 0..255 pixels"):
        read_batches(str(tmp_path / "0.png"), input_range=(0, 1))


def test_plain_tensorflow_refuses_0_to_1_floats_too(saved_model, images):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved_model))
    x = images[0][:4]
    reference = loaded.score(x).numpy()
    np.testing.assert_allclose(loaded.score(x.astype(np.float32)).numpy(), reference, rtol=1e-6)
    for fn in (loaded.score, loaded.anomaly_map):
        with pytest.raises(tf.errors.InvalidArgumentError, match="multiply it by 255"):
            fn(x.astype(np.float32) / 255)
    assert loaded.score(np.zeros((2, 28, 28), np.float32)).shape == (2,)  # black is black
    for off_scale in (x.astype(np.float32) - 128, x.astype(np.int32) * 257):  # -1..1, 16 bits
        for fn in (loaded.score, loaded.anomaly_map):
            with pytest.raises(tf.errors.InvalidArgumentError,
                               match="images must be pixels on 0..255; got values from"):
                fn(off_scale)


def test_plain_tensorflow_scores_an_empty_batch_as_empty(saved_model):
    """An empty batch has an empty answer: the model is not run on it (some oneDNN kernels fail
    on a zero-sized batch), and the shapes are those of a full batch with no rows."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved_model))
    for x in (np.zeros((0, 28, 28), np.uint8), np.zeros((0, 32, 32, 1), np.float32)):
        score, heat = loaded.score(x), loaded.anomaly_map(x)
        assert (score.shape, score.dtype) == ((0,), tf.float32)
        assert (heat.shape, heat.dtype) == ((0, *x.shape[1:3]), tf.float32)

    class RefusesEmpty(tf.Module):  # fails where the kernels did: if run on an empty batch
        def score(self, x):
            with tf.control_dependencies([tf.debugging.assert_positive(tf.shape(x)[0])]):
                return tf.reduce_mean(x, axis=[1, 2, 3])

        def reconstruct(self, x):
            return x + tf.reshape(self.score(x), [-1, 1, 1, 1]) * 0

    module = export.ScoringModule(RefusesEmpty(), 1, 0.5, {}, fold=False)
    for fn in (module.score, module.anomaly_map):
        assert fn(np.zeros((0, 28, 28), np.uint8)).shape[0] == 0
        assert fn(np.zeros((2, 28, 28), np.uint8)).shape[0] == 2


def test_batch_sizes_dtypes_ragged_lists_and_npy_files_are_named(saved_model, images, tmp_path):
    detector = atb.load(str(saved_model))
    Image.fromarray(images[0][0]).save(tmp_path / "one.png")
    for bad in (0, -1, 2.5, True):
        with pytest.raises(UsageError, match=rf"invalid batch_size: {bad!r} \(expected a pos"):
            detector.score(images[0][:2], batch_size=bad)
        with pytest.raises(UsageError, match=rf"invalid batch_size: {bad!r}"):
            detector.score_folder(tmp_path, batch_size=bad)
    with pytest.raises(UsageError, match=r"invalid images: 'list' \(expected an array of images"):
        detector.score([images[0][0], images[0][0][:20]])
    for bad in (np.zeros((2, 28, 28), bool), np.zeros((2, 28, 28), "m8[s]"),
                np.zeros((2, 28, 28), complex)):
        with pytest.raises(UsageError, match=re.escape(f"integer or float pixels, got dtype {bad.dtype}")):
            detector.score(bad)
    for path in ("a.png", [str(tmp_path / "one.png")] * 2):  # a path where pixels belong
        with pytest.raises(UsageError, match=r"got text \(dtype <U\d+\); image files are scored "
                                             r"by Detector.score_folder\)"):
            detector.score(path)
    np.save(tmp_path / "X.npy", images[0][:2])
    os.rename(tmp_path / "X.npy", tmp_path / "X.NPY")  # not read as IDX
    np.testing.assert_array_equal(inputs_lib.read_array(str(tmp_path / "X.NPY")), images[0][:2])
    with pytest.raises(UsageError, match="invalid input: '/dev/zero'"):  # once read forever
        inputs_lib.read_batches("/dev/zero")
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(UsageError, match=r"invalid input: .*empty.npy' \(expected a numeric"):
        next(iter(inputs_lib.read_batches(str(tmp_path / "empty.npy"))[1]))


def test_a_short_variables_file_or_an_unwritable_export_is_one_error(saved_model, tiny_run,
                                                                     tmp_path, capsys):
    import shutil

    cut = tmp_path / "cut"
    shutil.copytree(saved_model, cut)
    data = next((cut / "variables").glob("variables.data-*"))
    data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])
    err = one_line_exit_2(capsys, lambda: export.load(str(cut)))
    assert "invalid saved_model" in err and "a complete SavedModel" in err
    run, _ = tiny_run("autoencoder")
    (tmp_path / "file").write_text("")
    err = one_line_exit_2(capsys, lambda: export.reexport(str(run), str(tmp_path / "file" / "sm"),
                                                          "float32"))
    assert "invalid output_dir" in err and "is a file" in err
