"""Before / after for the SavedModel's `score`: the same model exported with fold=False (the
Keras networks traced as they are) and with fold=True (export's default, models/folded.py;
a bfloat16 model is not folded, so its two rows time the same graph),
optionally also the serving function under XLA (jit_compile), timed in one process, windows
interleaved and the order alternating every round, fed raw uint8 MNIST batches as
benchmarks.peer feeds ours. Prints a markdown table of img/s and the after / before ratio.

    python -m benchmarks.serving_speed --precisions=float32,mixed_bfloat16 --batch_sizes=64 \
        --data_dir=../shared/data [--xla]
"""

import os
import statistics
import tempfile
import time

from absl import flags

from anomaly_toolbox import cli

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("model", "ganomaly", "Registered model name.")
    flags.DEFINE_string("profile", "paper", "experiments/<model>_mnist_<profile>.json.")
    flags.DEFINE_list("precisions", ["float32", "mixed_bfloat16"], "Compute precisions.")
    flags.DEFINE_list("batch_sizes", ["64"], "Images per score call.")
    flags.DEFINE_integer("rounds", 5, "Rounds; each times every variant once.")
    flags.DEFINE_float("window_s", 2.0, "Seconds per timed window.")
    flags.DEFINE_bool("xla", False, "Also time the folded serving function with jit_compile.")
    flags.DEFINE_string("data_dir", None, "Folder holding mnist/*-ubyte.gz.")


def variants(model, tmp, xla):
    """name -> a loaded SavedModel's `score` (or, for xla, the folded model under XLA)."""
    import tensorflow as tf

    from anomaly_toolbox.data.preprocessing import to_model_input
    from anomaly_toolbox.models import folded
    from anomaly_toolbox.run import export

    out, keep = {}, []  # the loaded objects own the variables their functions read
    for name, fold in (("before (fold=False)", False), ("after (fold=True)", True)):
        path = export.save(model, os.path.join(tmp, name[:6]), channels=1, threshold=0.0,
                           metadata={"model": FLAGS.model}, fold=fold)
        keep.append(tf.saved_model.load(path))
        out[name] = keep[-1].score
    if xla:
        serving = folded.serving(model)
        out["after, XLA"] = tf.function(lambda x: serving.score(to_model_input(x)),
                                        jit_compile=True)
    return out, keep


def measure(precision, batch_size, raw):
    import numpy as np
    import tensorflow as tf

    from anomaly_toolbox.models.precision import policy
    from benchmarks.workload import build, config

    cfg = config(FLAGS.model, FLAGS.profile)
    with policy(precision):
        model = build(FLAGS.model, cfg["model"])
    batches = [tf.constant(raw[i:i + batch_size, ..., None])
               for i in range(0, 8 * batch_size, batch_size)]
    rates = {}
    with tempfile.TemporaryDirectory(prefix="serving-") as tmp:
        fns, _keep = variants(model, tmp, FLAGS.xla)
        reference = np.asarray(fns["before (fold=False)"](batches[0]))
        for name, fn in fns.items():
            got = np.asarray(fn(batches[0]))
            rates[name] = {"diff": float(np.max(np.abs(got - reference) / np.abs(reference))),
                           "img_s": []}
        for r in range(FLAGS.rounds):
            for name in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
                fns[name](batches[1]).numpy()
                t0, k = time.perf_counter(), 0
                while time.perf_counter() - t0 < FLAGS.window_s:
                    out = fns[name](batches[k % len(batches)])
                    k += 1
                out.numpy()
                rates[name]["img_s"].append(k * batch_size / (time.perf_counter() - t0))
    return rates


def body():
    from anomaly_toolbox.data.datasets import read_idx
    from benchmarks.timing import load_average

    raw = read_idx(os.path.join(FLAGS.data_dir, "mnist", "train-images-idx3-ubyte.gz"), 2051)
    print(f"Load: `{load_average()}`\n")
    print("| precision | batch | variant | img/s (median of rounds) | min / max | vs before | "
          "max relative score difference to before |")
    print("|---|---|---|---|---|---|---|")
    for precision in FLAGS.precisions:
        for batch_size in map(int, FLAGS.batch_sizes):
            rates = measure(precision, batch_size, raw[:8 * batch_size])
            before = statistics.median(rates["before (fold=False)"]["img_s"])
            for name, r in rates.items():
                mid = statistics.median(r["img_s"])
                print(f"| {precision} | {batch_size} | {name} | {mid:,.0f} | "
                      f"{min(r['img_s']):,.0f} / {max(r['img_s']):,.0f} | {mid / before:.2f}x | "
                      f"{r['diff']:.1e} |", flush=True)
    print(f"\nLoad: `{load_average()}`")


if __name__ == "__main__":
    cli.main(define_flags, body)
