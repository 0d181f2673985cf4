"""Train-step and scoring img/s of one model in float32 and in mixed bfloat16, interleaved in
one process (rounds alternate, so load on the machine hits both alike).

  python -m anomaly_toolbox.bench.precision_speed --model=ganomaly --filters=64,128,256

`--filter_grads` times the conv filter gradient (the op bfloat16 gains least on) at the paper
models' three 4x4 stride-2 shapes, TF's own kernel against an im2col + matmul formulation, in
both dtypes: the one candidate rewrite, measured before it is written into any model.
The speed report (`anomaly_toolbox.bench.speed --precisions=float32,mixed_bfloat16`) rates
every model against the ceiling of its own dtype.
"""

import time

from absl import flags

from anomaly_toolbox import cli

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("model", "ganomaly", "Registered model name.")
    flags.DEFINE_list("filters", ["64", "128", "256"], "Widths (paper: 64,128,256).")
    flags.DEFINE_integer("batch_size", 64, "Images per step.")
    flags.DEFINE_integer("steps", 8, "Steps (and scoring calls) per timed window.")
    flags.DEFINE_integer("rounds", 3, "Windows per precision, alternating.")
    flags.DEFINE_string("data_dir", None, "As for anomaly_toolbox.train.")
    flags.DEFINE_bool("op_profile", False, "Also print each precision's CPU time per train step "
                      "by op type (TF profiler; CPU time, so it holds on a loaded machine).")
    flags.DEFINE_bool("filter_grads", False, "Only time conv filter gradients: TF's kernel vs "
                      "im2col + matmul, float32 vs bfloat16, at the paper models' shapes.")


def build(model_name, filters, name):
    import keras
    import tensorflow as tf

    from anomaly_toolbox import models
    from anomaly_toolbox.models.precision import policy

    keras.utils.set_random_seed(0)
    with policy(name):
        cls = models.get(model_name)
        model = cls(**{**cls.DEFAULTS, "filters": filters}, channels=1)
        model.compile()
    return tf.function(model.train_step), tf.function(model.score)


def window(fn, x, steps):
    """Seconds for `steps` calls, synchronised on the last result."""
    start = time.perf_counter()
    for _ in range(steps):
        out = fn(x)
    (list(out.values())[0] if isinstance(out, dict) else out).numpy()
    return time.perf_counter() - start


PAPER_CONVS = ((64, 32, 1, 64), (64, 16, 64, 128), (64, 8, 128, 256))  # batch, side, in, out


def filter_grad_study(shapes=PAPER_CONVS, windows=5, steps=3):
    """Rows (shape, dtype, kernel GFLOP/s, im2col GFLOP/s, relative difference) for a 4x4
    stride-2 'same' convolution's filter gradient."""
    import statistics

    import tensorflow as tf

    from anomaly_toolbox.bench.timing import timed_windows

    rows = []
    for batch, side, cin, cout in shapes:
        for dtype in ("float32", "bfloat16"):
            x = tf.cast(tf.random.stateless_normal([batch, side, side, cin], [0, 1]), dtype)
            dy = tf.cast(tf.random.stateless_normal([batch, side // 2, side // 2, cout], [0, 2]),
                         dtype)
            kernel = tf.function(lambda x=x, dy=dy, cin=cin, cout=cout:
                                 tf.compat.v1.nn.conv2d_backprop_filter(
                                     x, [4, 4, cin, cout], dy, [1, 2, 2, 1], "SAME"))

            @tf.function
            def im2col(x=x, dy=dy, cin=cin, cout=cout):
                patches = tf.image.extract_patches(x, [1, 4, 4, 1], [1, 2, 2, 1], [1, 1, 1, 1],
                                                   "SAME")
                return tf.reshape(tf.matmul(tf.reshape(patches, [-1, 16 * cin]),
                                            tf.reshape(dy, [-1, cout]), transpose_a=True),
                                  [4, 4, cin, cout])

            a, b = tf.cast(kernel(), tf.float32), tf.cast(im2col(), tf.float32)
            diff = float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(a)))
            flops = 2 * batch * (side // 2) ** 2 * cout * 16 * cin
            speed = [flops * steps / statistics.median(timed_windows(lambda i: fn(), windows,
                                                                      steps)) / 1e9
                     for fn in (kernel, im2col)]
            rows.append(((batch, side, cin, cout), dtype, *speed, diff))
    return rows


def body():
    if FLAGS.filter_grads:
        print("| conv (batch x side² x in -> out) | dtype | TF kernel GFLOP/s | im2col+matmul "
              "GFLOP/s | im2col / kernel | max rel. difference |\n|---|---|---|---|---|---|")
        for (b, side, cin, cout), dtype, kernel, im2col, diff in filter_grad_study():
            print(f"| {b}x{side}²x{cin} -> {cout} | {dtype} | {kernel:.0f} | {im2col:.0f} | "
                  f"{im2col / kernel:.2f} | {diff:.1e} |")
        return
    from anomaly_toolbox.data import load_splits
    from anomaly_toolbox.data.preprocessing import to_model_input

    splits = load_splits("mnist", 3, data_dir=FLAGS.data_dir, limit=FLAGS.batch_size)
    x = to_model_input(splits.x_train[:FLAGS.batch_size])
    filters = [int(f) for f in FLAGS.filters]
    fns = {name: build(FLAGS.model, filters, name) for name in ("float32", "mixed_bfloat16")}
    for step, score in fns.values():
        window(step, x, 2), window(score, x, 2)  # warm-up: tracing and first kernels
    best = {name: [0.0, 0.0] for name in fns}
    for _ in range(FLAGS.rounds):
        for name, (step, score) in fns.items():
            images = FLAGS.steps * FLAGS.batch_size
            best[name][0] = max(best[name][0], images / window(step, x, FLAGS.steps))
            best[name][1] = max(best[name][1], images / window(score, x, FLAGS.steps))
    print(f"| precision | train img/s | score img/s |  ({FLAGS.model}, filters {filters}, "
          f"batch {FLAGS.batch_size}, best of {FLAGS.rounds} interleaved windows)")
    print("|---|---|---|")
    for name, (train, score) in best.items():
        print(f"| {name} | {train:.0f} | {score:.0f} |")
    if FLAGS.op_profile:
        from anomaly_toolbox.bench.speed_investigation import op_profile

        for name, (step, _) in fns.items():
            profile = op_profile(step, [x], steps=5, top=6)
            per_step = profile["total_self_us_per_step"] / 1000
            print(f"{name}: {per_step:.0f} ms CPU per step; " + ", ".join(
                f"{op} {share * per_step:.0f} ms" for op, share in profile["top"]))
    f32, b16 = best["float32"], best["mixed_bfloat16"]
    print(f"bfloat16 / float32: train {b16[0] / f32[0]:.2f}x, score {b16[1] / f32[1]:.2f}x")


if __name__ == "__main__":
    cli.main(define_flags, body)
