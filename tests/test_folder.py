"""`--dataset=folder:PATH`: train on your own PNG/JPEG images, score new ones."""

import json
import shutil

import numpy as np
import pytest
from conftest import score_in_fresh_process
from PIL import Image

from anomaly_toolbox.run import training
from anomaly_toolbox.errors import UsageError
from anomaly_toolbox.data.folders import load_splits
from anomaly_toolbox.data.inputs import read_input

TINY = {"epochs": 1, "batch_size": 16, "model": {"latent_dim": 8, "filters": [4, 8, 16]}}


def _write(folder, images, rgb=False, suffix=".png"):
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        im = Image.fromarray(image)
        (im.convert("RGB") if rgb else im).save(folder / f"{i:03d}{suffix}")


@pytest.fixture(scope="module")
def digits(mnist, tmp_path_factory):
    """train/: 60 normal digits (not 3), test/normal/: 20, test/anomalous/: 20 threes."""
    root = tmp_path_factory.mktemp("digits")
    normal, threes = mnist.x_test[mnist.y_test != 3], mnist.x_test[mnist.y_test == 3]
    _write(root / "train", normal[:60])
    _write(root / "test" / "normal", normal[60:80], suffix=".jpg")
    _write(root / "test" / "anomalous", threes[:20])
    return root


def test_folder_splits_resize_and_stratify(digits):
    s = load_splits(f"folder:{digits}", split_seed=0)
    assert s.x_train.shape == (60, 32, 32, 1) and s.x_train.dtype == np.uint8
    assert len(s.y_val) == 10 and s.y_val.sum() == 5 and len(s.y_test) == 30


def test_rgb_folder_without_test_holds_out_normals(mnist, tmp_path):
    _write(tmp_path / "train", mnist.x_test[:20], rgb=True)
    s = load_splits(f"folder:{tmp_path}")
    assert s.x_train.shape == (18, 32, 32, 3) and len(s.y_val) == 2 and not s.y_val.any()
    assert len(s.y_test) == 0


def test_missing_train_folder_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="invalid dataset: 'folder:.*train/ holds normal images"):
        load_splits(f"folder:{tmp_path}")


def test_train_on_a_folder_then_score_new_images(digits, tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    out = tmp_path / "run"
    results = training.fit("ganomaly", f"folder:{digits}", 0, str(out), config=str(config),
                           verbose=0)
    assert results["protocol"] == "folder" and results["anomalous_class"] is None
    assert results["splits"]["test_anomalies"] == 15 and 0 <= results["test"]["auprc"] <= 1
    ids, x = read_input(str(digits / "test" / "anomalous"), 1, 32)
    assert x.shape == (20, 32, 32, 1) and ids[0] == "000.png"
    fresh = score_in_fresh_process(out / "saved_model", x, tmp_path)
    stored = np.load(out / "scores.npz")
    assert fresh.shape == (20,) and np.all(np.isfinite(fresh))
    # the test split's anomalies are among these 20 images: their stored scores must reappear
    anomalous_scores = stored["test_scores"][stored["test_labels"] == 1]
    assert all(np.min(np.abs(fresh - s)) < 1e-5 for s in anomalous_scores)


def test_folder_train_split_streams_from_disk_resized_like_the_scorer(mnist, tmp_path):
    """Non-square and mixed-size files are stretched to image_size; train/ is decoded in the
    tf.data pipeline, pixel for pixel what the in-memory reader (and the scorer) produce."""
    from anomaly_toolbox.data.folders import ImageFiles, fit_to, read_image
    from anomaly_toolbox.data.preprocessing import eval_dataset

    train = tmp_path / "train"
    train.mkdir()
    for i, image in enumerate(mnist.x_test[:5]):
        Image.fromarray(image).resize((30 + 4 * i, 40)).convert("RGB").save(train / f"{i}.png")
    s = load_splits(f"folder:{tmp_path}", image_size=64)
    assert isinstance(s.x_train, ImageFiles) and s.x_train.shape == (4, 64, 64, 3)
    assert s.x_val.shape == (1, 64, 64, 3) and s.x_val.dtype == np.uint8
    streamed = np.concatenate([b.numpy() for b in eval_dataset(s.x_train, 2, 64, pad=False)])
    expected = np.stack([fit_to(read_image(p, 3), 64) for p in s.x_train.paths])
    np.testing.assert_array_equal(np.round((streamed + 1) * 127.5), expected)


@pytest.mark.parametrize("broken, message", [
    ("empty_anomalous", "test/anomalous.*at least one PNG/JPEG image"),
    ("empty_train", "train.*at least one PNG/JPEG image"),
    ("unreadable", "bad.png.*readable image"),
])
def test_folder_problems_are_named(mnist, tmp_path, broken, message):
    _write(tmp_path / "train", [] if broken == "empty_train" else mnist.x_test[:4])
    _write(tmp_path / "test" / "normal", mnist.x_test[4:6])
    _write(tmp_path / "test" / "anomalous", [] if broken == "empty_anomalous" else mnist.x_test[6:8])
    if broken == "unreadable":
        (tmp_path / "test" / "normal" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(UsageError, match=f"invalid dataset: .*{message}"):
        load_splits(f"folder:{tmp_path}")


@pytest.mark.parametrize("where", ["train", "test/normal"])
def test_a_fifo_named_like_an_image_is_refused_not_waited_on(mnist, tmp_path, where):
    """Opening a FIFO blocks until something writes to it: training (and score on the folder)
    waited forever. The alarm ends the test instead of the hang."""
    import os
    import signal

    def hung(number, frame):
        raise TimeoutError("open() waited on the FIFO")
    for folder in ("train", "test/normal", "test/anomalous"):
        _write(tmp_path / folder, mnist.x_test[:4])
    os.mkfifo(tmp_path / where / "f.png")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        with pytest.raises(UsageError, match=f"invalid dataset: .*{where}/f.png.*not a FIFO"):
            load_splits(f"folder:{tmp_path}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("channels", [1, 3])
def test_a_16_bit_png_reads_as_its_8_bit_rounding_not_clipped(tmp_path, channels):
    """Pillow's convert("L") clips 16-bit pixels at 255: a digit saved as 16-bit would score
    (and train) as a black-and-white image."""
    from anomaly_toolbox.data.folders import read_image

    eight = (np.arange(28 * 28) % 256).astype(np.uint8).reshape(28, 28)
    Image.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / "d16.png")
    Image.fromarray(eight).save(tmp_path / "d8.png")
    got = read_image(str(tmp_path / "d16.png"), channels)
    assert got.dtype == np.uint8 and got.shape == (28, 28, channels)
    np.testing.assert_array_equal(got, read_image(str(tmp_path / "d8.png"), channels))


def test_other_images_under_the_same_path_are_neither_resumed_nor_ensembled(digits, tmp_path):
    """run.json records the images' hashes: a run folder, or an ensemble, once mixed the images
    of two trainings without a word when a folder's contents changed under the same path."""
    import shutil

    from anomaly_toolbox.run import ensemble

    data, config = tmp_path / "imgs", tmp_path / "tiny.json"
    shutil.copytree(digits, data)
    config.write_text(json.dumps(TINY))
    fit = lambda out: training.fit("ganomaly", f"folder:{data}", 0, str(tmp_path / out),
                                   config=str(config), verbose=0)
    fit("a")
    first = Image.open(data / "train" / "000.png")
    Image.fromarray(255 - np.asarray(first)).save(data / "train" / "000.png")
    with pytest.raises(UsageError, match=r"invalid output_dir: .* it holds a run with "
                                         r"data\.sha256: '[0-9a-f]+' -> '[0-9a-f]+'"):
        fit("a")
    fit("b")
    with pytest.raises(UsageError, match=r"invalid members: .*b' \(expected a run on the same "
                                         r"images as .*a \(data_source differs: sha256: "):
        ensemble.build([str(tmp_path / "a"), str(tmp_path / "b")], str(tmp_path / "both"))
    first.save(data / "train" / "000.png")
    assert fit("a")["selected_epoch"] == 1  # the same images again: already finished


def test_hidden_files_are_not_images(digits, tmp_path):
    """A hidden copy was trained on, and macOS's `._000.png` (not an image) stopped training."""
    import shutil

    shutil.copytree(digits / "train", tmp_path / "train")
    shutil.copy(tmp_path / "train" / "000.png", tmp_path / "train" / ".hidden.png")
    (tmp_path / "train" / "._000.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    assert load_splits(f"folder:{tmp_path}").x_train.shape[0] == 54  # 60, 6 held out as before


def test_the_f1_rule_falling_back_without_validation_anomalies_is_said(mnist, tmp_path, capsys):
    """Two anomalous test images leave validation none: f1 fell back to fpr:0.01 and the final
    line said only "val threshold T"."""
    normal, threes = mnist.x_test[mnist.y_test != 3], mnist.x_test[mnist.y_test == 3]
    _write(tmp_path / "data" / "train", normal[:40])
    _write(tmp_path / "data" / "test" / "normal", normal[40:60])
    _write(tmp_path / "data" / "test" / "anomalous", threes[:2])
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    results = training.fit("autoencoder", f"folder:{tmp_path / 'data'}", 0, str(tmp_path / "run"),
                           config=str(tmp_path / "tiny.json"), verbose=0)
    out = capsys.readouterr().out
    assert "auprc" not in results["validation"] and "auprc" in results["test"]
    assert results["validation"]["threshold_target_fpr"] == 0.01
    assert ("fpr:0.01: validation holds no anomalies, so --threshold=f1 could not be applied)"
            in out.splitlines()[-1]), out


def test_rgb_test_images_beside_grayscale_train_ones_are_said_to_be_converted(mnist, tmp_path,
                                                                              capsys):
    """They were converted to grayscale without a word."""
    _write(tmp_path / "train", mnist.x_test[:8])
    _write(tmp_path / "test" / "normal", mnist.x_test[8:12])
    _write(tmp_path / "test" / "anomalous", mnist.x_test[12:16], rgb=True)
    s = load_splits(f"folder:{tmp_path}")
    assert s.x_test.shape[-1] == 1
    assert "test/ holds RGB images and its train/ only grayscale ones: they are converted to " \
        "grayscale" in capsys.readouterr().out
    shutil.rmtree(tmp_path / "test" / "anomalous")
    _write(tmp_path / "test" / "anomalous", mnist.x_test[12:16])
    load_splits(f"folder:{tmp_path}")
    assert "RGB" not in capsys.readouterr().out
