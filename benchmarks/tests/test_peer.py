"""The side-by-side peer benchmark: same inputs on both sides, and its table."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
from benchmarks.tests.conftest import DATA_DIR, REPO


def _peer_script():
    from benchmarks import peer

    spec = importlib.util.spec_from_file_location("peer_anomalib", peer.PEER_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports neither torch nor anomalib at module level
    return module


def test_the_peer_is_fed_exactly_our_model_input():
    from anomaly_toolbox.data.datasets import read_idx
    from anomaly_toolbox.data.preprocessing import to_model_input

    theirs = _peer_script().mnist_batches(DATA_DIR, 64, 2)
    raw = read_idx(os.path.join(DATA_DIR, "mnist", "train-images-idx3-ubyte.gz"), 2051)
    ours = to_model_input(raw[:128]).numpy()  # NHWC; the peer's batches are NCHW
    np.testing.assert_allclose(np.concatenate(theirs)[:, 0], ours[..., 0], atol=1e-6)
    assert [b.shape for b in theirs] == [(64, 1, 32, 32)] * 2


def test_table_reports_spread_over_rounds_and_the_median_ratio():
    from benchmarks import peer

    runs = [{"side": s, "precision": "float32", "train_img_s": t, "infer_img_s": 10 * t}
            for s, values in (("ours", (300, 280, 320)), ("anomalib", (150, 160, 170)))
            for t in values]
    meta = {"command": "c", "machine": "m", "vector_set": "avx2", "versions": "v", "rounds": 3,
            "windows": 5}
    text = "\n".join(peer.render(runs, meta))
    assert "| float32 | train | 280 / 300 / 320 | 150 / 160 / 170 | 1.88x |" in text
    assert "| float32 | inference | 2,800 / 3,000 / 3,200 | 1,500 / 1,600 / 1,700 | 1.88x |" in text
    assert "vector set: avx2" in text


def test_a_missing_peer_python_is_one_error_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "benchmarks.peer",
                          f"--peer_python={tmp_path / 'nope'}", f"--results_dir={tmp_path}"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: invalid peer_python:")
    assert "Traceback" not in out.stderr and not list(tmp_path.iterdir())


def test_a_missing_data_dir_or_a_folder_as_peer_python_is_one_error_line(tmp_path):
    """Left out, --data_dir reached both sides as the string 'None' (a child ran, then a
    traceback); a folder passed the peer_python check. Both refused before any child runs."""
    for args, message in [([f"--peer_python={sys.executable}"], "error: invalid data_dir: None"),
                          ([f"--peer_python={tmp_path}", f"--data_dir={DATA_DIR}"],
                           "error: invalid peer_python:")]:
        out = subprocess.run([sys.executable, "-m", "benchmarks.peer", *args,
                              f"--results_dir={tmp_path / 'r'}"],
                             capture_output=True, text=True, cwd=REPO)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-500:]
        assert out.stderr.strip().splitlines()[-1].startswith(message), out.stderr[-500:]


def test_the_hand_flop_count_equals_the_graph_count_of_our_encoders():
    """The note's MFLOP/image comes from a formula (it must hold for the peer's network too);
    our GANomaly's scoring graph, counted by TF's op statistics, checks its encoder part. TF's
    statistic over-counts the 1x1 -> 4x4 transposed convolution, so the decoder stays the
    mirror."""
    import pytest
    import tensorflow as tf

    from anomaly_toolbox import config as config_lib
    from anomaly_toolbox import models
    from benchmarks import peer
    from benchmarks.flops import count_flops
    from benchmarks.workload import build, config_path

    cfg = config_lib.resolve(models.get("ganomaly"), config_path("ganomaly", "paper"))
    widths = (tuple(cfg["model"]["filters"]), cfg["model"]["latent_dim"])
    assert widths == (peer.WIDTHS, peer.LATENT)
    model = build("ganomaly", cfg["model"])
    fn = tf.function(model.score).get_concrete_function(
        tf.TensorSpec([4, peer.SIDE, peer.SIDE, 1], tf.float32))
    encoders = count_flops(fn)[1]["Conv2D"] / 4 / 1e6  # the encoder and the second encoder
    assert encoders == pytest.approx(peer.score_conv_mflop() * 2 / 3, rel=1e-9)


def test_another_machines_run_is_its_own_section_beside_the_published_one(tmp_path):
    """--report=peer_<name>.md keeps the published peer.md and adds a titled section after it."""
    from benchmarks import peer, report

    runs = [{"side": s, "precision": "float32", "train_img_s": t, "infer_img_s": t}
            for s, t in (("ours", 200), ("anomalib", 100))]
    meta = {"command": "c", "machine": "m", "vector_set": "avx2", "versions": "v", "rounds": 1,
            "windows": 5}
    for name in ("peer.md", "peer_avx2.md"):
        text = "\n".join(peer.render(runs, {**meta, "report": name}))
        report.write_section(str(tmp_path), name, text)
    (tmp_path / "peer_notes.txt").write_text("not a section")
    report.write(str(tmp_path), str(tmp_path / "benchmarks.md"))
    text = (tmp_path / "benchmarks.md").read_text()
    published = text.index("## Speed beside the peer: anomalib's GANomaly and ours")
    assert published < text.index("## Speed beside the peer on another machine (avx2): ")
    assert "not a section" not in text
