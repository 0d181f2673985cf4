"""Side by side with the peer: anomalib's GANomaly and ours at the published widths (64/128/256,
latent 100), on the same 32x32 MNIST batches of 64, in float32 and bfloat16, train and inference
img/s. One process per side, precision and round, never two at once; the sides alternate order
every round so that a load drift hits both. Writes benchmarks/results/peer.md (appended to
benchmarks.md).

    python -m benchmarks.peer --peer_python=PEER_VENV/bin/python --rounds=3 \
        --data_dir=../shared/data [--pause=PID,...]

The peer lives in its own virtual environment (pip install anomalib there); it is never a
dependency of the toolbox. `--pause` stops other processes (SIGSTOP to their process groups)
while timing and resumes them at the end, whatever happens.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from functools import partial

from absl import flags

from anomaly_toolbox import cli
from benchmarks import RESULTS, child_env, report
from benchmarks.grid_flags import refuse_repeated_flags
from benchmarks.timing import paused, vector_set

FLAGS = flags.FLAGS
PEER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer_anomalib.py")
SIDES = ("ours", "anomalib")
PRECISIONS = ("float32", "mixed_bfloat16")
REPORT = report.PEER_REPORT
TARGETS = {"train_img_s": 1.5, "infer_img_s": 2.0}  # issue 39: ours / anomalib, each precision
WIDTHS, LATENT, SIDE = (64, 128, 256), 100, 32  # the published GANomaly both sides run


def score_conv_mflop(widths=WIDTHS, latent=LATENT, side=SIDE, channels=1):
    """Multiply-add FLOPs per image of GANomaly's inference convolutions (encoder, decoder,
    second encoder: what both sides compute), in MFLOP; the decoder mirrors the encoder."""
    flops, cin, s = 0, channels, side
    for w in widths:
        s //= 2
        flops += 2 * s * s * 16 * cin * w  # 4x4 stride-2 convolution
        cin = w
    flops += 2 * 16 * cin * latent  # the 4x4 -> 1x1 latent convolution
    return 3 * flops / 1e6


def define_flags():
    flags.DEFINE_string("peer_python", None, "Python of the peer's virtual environment (anomalib).")
    flags.DEFINE_integer("rounds", 3, "Rounds; each times every side and precision once.")
    flags.DEFINE_integer("windows", 5, "Timed windows per process (its median is the round's).")
    flags.DEFINE_list("precisions", list(PRECISIONS), "float32 and/or mixed_bfloat16.")
    flags.DEFINE_list("pause", [], "PIDs whose process groups are stopped while timing.")
    flags.DEFINE_string("data_dir", None, "Folder holding mnist/*-ubyte.gz.")
    flags.DEFINE_string("results_dir", RESULTS, "Where peer.md and peer.json go.")
    flags.DEFINE_string("report", REPORT, "The section's file in --results_dir: peer.md for the "
                        "published machine, peer_<name>.md for another machine's run, kept "
                        "beside it in benchmarks.md (e.g. peer_avx2.md).")
    flags.DEFINE_string("side", None, "Internal: time our side in this process, print JSON.")


def ours(precision, data_dir, windows, min_window_s=3.0, batch_size=64):
    """Our GANomaly (`paper` profile) through its compiled train step and its exported SavedModel,
    fed the same raw images as the peer's side."""
    import tempfile

    import numpy as np
    import tensorflow as tf

    from benchmarks.timing import sync
    from benchmarks.workload import build, compiled_step, config
    from anomaly_toolbox.data.datasets import read_idx
    from anomaly_toolbox.data.preprocessing import to_model_input
    from anomaly_toolbox.models.precision import policy
    from anomaly_toolbox.run import export

    cfg = config("ganomaly", "paper")
    raw = read_idx(os.path.join(data_dir, "mnist", "train-images-idx3-ubyte.gz"), 2051)
    raw = np.asarray(raw[:batch_size * 8])
    uint8 = [tf.constant(raw[i * batch_size:(i + 1) * batch_size, ..., None]) for i in range(8)]
    batches = [to_model_input(b) for b in uint8]
    with policy(precision):
        model = build("ganomaly", cfg["model"])
    step = compiled_step(model)
    counter = [0]

    def timed(fn):
        fn()
        t0 = time.perf_counter()
        sync(fn())
        steps = max(1, int(np.ceil(min_window_s / (time.perf_counter() - t0))))
        out = []
        for _ in range(windows):
            t0 = time.perf_counter()
            for _ in range(steps):
                result = fn()
            sync(result)
            out.append(steps * batch_size / (time.perf_counter() - t0))
        return statistics.median(out)

    def train():
        counter[0] += 1
        return step(batches[counter[0] % len(batches)])
    train_img_s = timed(train)
    with tempfile.TemporaryDirectory(prefix="peer-") as tmp:
        path = export.save(model, os.path.join(tmp, "saved_model"), channels=1, threshold=0.0,
                           metadata={"model": "ganomaly", "dataset": "mnist", "channels": 1,
                                     "config": cfg})
        loaded = tf.saved_model.load(path)

        def score():
            counter[0] += 1
            return loaded.score(uint8[counter[0] % len(uint8)])
        infer_img_s = timed(score)
    import keras
    return {"side": "ours", "precision": precision, "train_img_s": train_img_s,
            "infer_img_s": infer_img_s,
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__}}


def _child(side, precision):
    env = child_env(OMP_WAIT_POLICY="PASSIVE")  # torch's OpenMP spin-wait otherwise
    common = [f"--windows={FLAGS.windows}", f"--data_dir={FLAGS.data_dir}"]
    if side == "ours":
        command = [sys.executable, "-m", "benchmarks.peer", f"--side={precision}"]
    else:
        command = [FLAGS.peer_python, PEER_SCRIPT, f"--precision={precision}"]
    command += common
    out = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(f"{side} {precision} failed:\n{out.stderr[-2000:]}")
    return json.loads(lines[-1])


def _spread(values):
    return f"{min(values):,.0f} / {statistics.median(values):,.0f} / {max(values):,.0f}"


def render(runs, meta):
    """The table: min / median / max over rounds of each side's per-process median."""
    where = ("" if meta.get("report", REPORT) == REPORT
             else f" on another machine ({meta['vector_set']})")
    lines = [f"## Speed beside the peer{where}: anomalib's GANomaly and ours", "",
             f"Command: `{meta['command']}`. Machine: {meta['machine']}; vector set: "
             f"{meta['vector_set']}. {meta['versions']}. Each cell: min / median / max over "
             f"{meta['rounds']} rounds of the median of {meta['windows']} timed windows, one "
             "process at a time, the sides alternating order every round. Published widths "
             "64/128/256, latent 100, 32x32 MNIST, batch 64. Ours: the compiled train step and "
             "the exported SavedModel's `score` (which also pads and scales raw images; in "
             "float32 it runs folded inference copies of the networks); "
             "anomalib: its networks and losses with its `training_step`'s two optimizer steps, "
             "and its model's forward in eval mode (`torch.autocast` for bfloat16).", "",
             "| precision | what | ours img/s | anomalib img/s | ours / anomalib (median) | "
             "issue 39's target |", "|---|---|---|---|---|---|"]
    behind = []
    for precision in dict.fromkeys(r["precision"] for r in runs):
        for key, what in (("train_img_s", "train"), ("infer_img_s", "inference")):
            v = {s: [r[key] for r in runs if (r["side"], r["precision"]) == (s, precision)]
                 for s in SIDES}
            if all(v.values()):
                ratio = statistics.median(v["ours"]) / statistics.median(v["anomalib"])
                met = ratio >= TARGETS[key]
                lines.append(f"| {precision} | {what} | {_spread(v['ours'])} | "
                             f"{_spread(v['anomalib'])} | {ratio:.2f}x | {TARGETS[key]}x: "
                             f"{'met' if met else f'**behind** ({ratio:.3f}x)'} |")
                if not met:
                    behind.append((key, precision, *(statistics.median(v[s]) for s in SIDES)))
    lines += _why_behind([b[1:] for b in behind if b[0] == "infer_img_s"],
                         [b[1] for b in behind if b[0] == "train_img_s"])
    return lines + [""]


def _why_behind(inference, train):
    """The note under the table for the cells behind issue 39's targets."""
    lines = []
    if inference:
        mflop = score_conv_mflop()
        rates = "; ".join(f"{p}: ours {o * mflop / 1e3:.0f}, anomalib {a * mflop / 1e3:.0f}, "
                          f"{TARGETS['infer_img_s']}x would be "
                          f"{TARGETS['infer_img_s'] * a * mflop / 1e3:.0f} GFLOP/s"
                          for p, o, a in inference)
        lines += ["", "Inference behind the target: both sides compute the same "
                  f"{mflop:.0f} MFLOP of convolutions per image (encoder, decoder, second "
                  f"encoder), so the ratio is one of kernel speeds ({rates}): set them against "
                  "the machine's convolution and matmul ceilings in benchmarks.md's \"Speed "
                  "report\" (another run). A faster ours needs fewer FLOPs, not faster "
                  "kernels, once it runs at the ceiling."]
    if train:
        lines += ["", f"Train behind the target ({', '.join(train)}): a train step spends "
                  "about a third of its FLOPs in convolution filter gradients, which this CPU's "
                  "bfloat16 kernels do not speed up (benchmarks.md, \"Speed report\", "
                  "bfloat16 beside float32: the train-step bound)."]
    return lines


def body():
    from anomaly_toolbox.data import datasets
    from anomaly_toolbox.errors import UsageError

    for p in FLAGS.precisions:
        if p not in PRECISIONS:
            raise UsageError("precisions", ",".join(FLAGS.precisions), f"each one of {PRECISIONS}")
    if FLAGS.side:
        print(json.dumps(ours(FLAGS.side, FLAGS.data_dir, FLAGS.windows)))
        return
    if not FLAGS.peer_python or not os.path.isfile(FLAGS.peer_python) \
            or not os.access(FLAGS.peer_python, os.X_OK):  # a folder is "executable" too
        raise UsageError("peer_python", FLAGS.peer_python, "the python of a venv with anomalib")
    # both sides read MNIST from it: left out, each child was given --data_dir=None and failed
    if not FLAGS.data_dir or not datasets.has_idx_files(os.path.join(FLAGS.data_dir, "mnist")):
        raise UsageError("data_dir", FLAGS.data_dir, "a folder holding mnist/*-ubyte.gz")
    for name in ("rounds", "windows"):
        if getattr(FLAGS, name) <= 0:
            raise UsageError(name, getattr(FLAGS, name), "a positive integer")
    if FLAGS.report != REPORT and not report.OTHER_PEER_REPORT.fullmatch(FLAGS.report):
        raise UsageError("report", FLAGS.report, "peer.md or peer_<name>.md, <name> of a-z, 0-9")
    runs = []
    with paused(FLAGS.pause):
        for r in range(FLAGS.rounds):
            for precision in FLAGS.precisions:
                for side in SIDES if r % 2 == 0 else SIDES[::-1]:
                    runs.append({**_child(side, precision), "round": r})
                    print(json.dumps(runs[-1]), flush=True)
    versions = {**runs[0]["versions"], **next(r["versions"] for r in runs if r["side"] != runs[0]["side"])}
    report_flag = "" if FLAGS.report == REPORT else f" --report={FLAGS.report}"
    meta = {"command": "python -m benchmarks.peer --peer_python=PEER/bin/python "
                       f"--rounds={FLAGS.rounds} --windows={FLAGS.windows}{report_flag} "
                       f"--precisions={','.join(FLAGS.precisions)} --data_dir=../shared/data",
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus", "vector_set": vector_set(),
            "versions": ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
            "rounds": FLAGS.rounds, "windows": FLAGS.windows, "report": FLAGS.report}
    text = "\n".join(render(runs, meta))
    report.write_section(FLAGS.results_dir, FLAGS.report, text, {"runs": runs, **meta})
    print(text)


if __name__ == "__main__":
    cli.main(define_flags, body, partial(refuse_repeated_flags, "precisions"))
