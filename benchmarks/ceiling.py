"""The machine's own ceiling in GFLOP/s, measured in the same run as the models it is compared
with: a float32 matmul, and the paper models' middle convolution (4x4, stride 2, 'same') with
its two gradients. A model's GFLOP/s means little without what this machine, under this load,
reaches on its largest kernels."""

import statistics

from benchmarks.timing import sync, timed_windows

CONV_CEILING_SHAPE = (64, 16, 16, 64, 128)  # batch, side, side, in channels, out channels


def measure_ceiling(windows=5, steps=3, matmul_size=2048, conv_shape=CONV_CEILING_SHAPE,
                    kinds=("matmul", "conv", "conv_input_grad", "conv_filter_grad"),
                    dtype="float32"):
    """Machine ceiling in GFLOP/s (medians) in `dtype` (float32 or bfloat16): a matmul, and a
    4x4 stride-2 'same' convolution forward, its input gradient (= a transposed convolution)
    and filter gradient. A model is rated against the ceiling of the precision it computes in."""
    import tensorflow as tf

    rng = tf.random.Generator.from_seed(0)

    def normal(shape):
        return tf.cast(rng.normal(shape), dtype)

    n = matmul_size
    a, b = normal([n, n]), normal([n, n])
    matmul = tf.function(lambda: tf.matmul(a, b))
    batch, side, _, cin, cout = conv_shape
    x = normal([batch, side, side, cin])
    w = normal([4, 4, cin, cout])
    dy = normal([batch, side // 2, side // 2, cout])
    conv = tf.function(lambda: tf.nn.conv2d(x, w, 2, "SAME"))
    conv_input_grad = tf.function(lambda: tf.nn.conv2d_transpose(
        dy, w, [batch, side, side, cin], 2, "SAME"))
    conv_filter_grad = tf.function(lambda: tf.compat.v1.nn.conv2d_backprop_filter(
        x, [4, 4, cin, cout], dy, [1, 2, 2, 1], "SAME"))
    conv_flops = 2 * batch * (side // 2) ** 2 * cout * 16 * cin
    result = {"matmul_size": n, "conv_shape": list(conv_shape), "dtype": dtype}
    for key, fn, flops in (("matmul", matmul, 2 * n ** 3), ("conv", conv, conv_flops),
                           ("conv_input_grad", conv_input_grad, conv_flops),
                           ("conv_filter_grad", conv_filter_grad, conv_flops)):
        if key not in kinds:
            continue
        sync(fn())  # trace + warm-up
        seconds = timed_windows(lambda i: fn(), windows, steps)
        result[f"{key}_gflops"] = flops * steps / statistics.median(seconds) / 1e9
    return result
