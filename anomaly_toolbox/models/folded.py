"""Inference-only copies of a model's networks, for export: what scoring runs, made cheaper.

A `keras.Sequential` network becomes a `Folded` one computing the same function in inference
mode (equal up to float rounding; tests/test_folded.py bounds the difference):
- an inference-mode BatchNormalization is folded into the convolution before it (scaled kernel
  plus a bias), so no normalisation, and under bfloat16 none of its float32 round trips, runs;
- a convolution that maps a whole 4x4 input to 1x1, and a transposed one that maps 1x1 to 4x4
  (the latent code's ends), run as one float32 matmul: oneDNN's direct convolutions are 2-3x
  slower there. float32 even under bfloat16 (as fast at this size): a bfloat16 matmul's result
  depended on the batch size (oneDNN picks its kernel by rows), so one image scored 0.5 %
  apart from the same image in a batch of 8;
- a stride-2 4x4 'same' transposed convolution with few outputs (the decoder's last, image
  layer) runs as a 3x3 convolution to 4x the outputs then depth_to_space ("sub-pixel"): oneDNN's
  transposed kernel is about 2x slower at 1-4 output channels (more at 64 and up, so not there).
Any other layer is called as it is. Weights are copied when the copy is made: a copy made after
training serves that training's weights. `serving(model)` is the model with its networks
replaced by these copies, for export's `score` and `anomaly_map`.

float32 models only (`foldable`). Under bfloat16 the copies scored 1.3-1.4x as fast, but a
GANomaly score (a tiny latent distance) moves with any change in the rounding of its latent
codes: scores moved up to 1.2 % from the Keras model's, beyond the 0.1 % a SavedModel keeps to
its run's stored scores (tests/test_precision.py), so bfloat16 models export the Keras networks.
"""

import types

import keras
import numpy as np
import tensorflow as tf
from keras import layers

SUBPIXEL_MAX_OUTPUTS = 4
# For output phase p (row or column parity) of a stride-2 4x4 'same' transposed convolution, the
# kernel tap that input offset -1, 0, +1 contributes (None: none).
_TAPS = ((3, 1, None), (None, 2, 0))


def _subpixel_kernel(k):
    """(4, 4, out, in) transposed kernel -> (3, 3, in, 4 * out) kernel of the equivalent
    stride-1 convolution, output channels ordered (row phase, column phase, out) as
    depth_to_space reads them."""
    out, cin = k.shape[2], k.shape[3]
    w = np.zeros((3, 3, cin, 2, 2, out), k.dtype)
    for ph in range(2):
        for pw in range(2):
            for di in range(3):
                for dj in range(3):
                    a, b = _TAPS[ph][di], _TAPS[pw][dj]
                    if a is not None and b is not None:
                        w[di, dj, :, ph, pw, :] = k[a, b].T
    return w.reshape(3, 3, cin, 4 * out)


class _Conv(tf.Module):
    """One (transposed) convolution with its folded BatchNormalization and its activation."""

    def __init__(self, layer, norm, input_shape):
        super().__init__(name=layer.name)
        transposed = isinstance(layer, layers.Conv2DTranspose)
        k = np.asarray(layer.kernel.numpy(), np.float64)
        b = (np.asarray(layer.bias.numpy(), np.float64) if layer.use_bias
             else np.zeros(layer.filters))
        if norm is not None:
            s = ((norm.gamma.numpy() if norm.scale else 1.0)
                 / np.sqrt(norm.moving_variance.numpy().astype(np.float64) + norm.epsilon))
            k = k * (s[:, None] if transposed else s)  # the output axis: 2 transposed, else 3
            b = (b - norm.moving_mean.numpy()) * s + (norm.beta.numpy() if norm.center else 0.0)
        side, kside, stride = input_shape[1], layer.kernel_size[0], layer.strides[0]
        valid = layer.padding == "valid"
        if not transposed and valid and side == kside and input_shape[2] == kside:
            self.kind, k = "matmul", k.reshape(-1, layer.filters)
            self.out_shape = [1, 1, layer.filters]
        elif transposed and valid and side == 1 and input_shape[2] == 1:
            self.kind = "matmul"
            k = np.transpose(k, (3, 0, 1, 2)).reshape(k.shape[3], -1)
            b = np.tile(b, kside * kside)
            self.out_shape = [kside, kside, layer.filters]
        elif (transposed and not valid and stride == 2 and kside == 4
              and layer.filters <= SUBPIXEL_MAX_OUTPUTS):
            self.kind, k, b = "subpixel", _subpixel_kernel(k), np.tile(b, 4)
        else:
            self.kind = "transposed" if transposed else "conv"
            self.stride, self.padding = stride, layer.padding.upper()
            self.out_shape = list(layer.compute_output_shape(input_shape)[1:])
        self.compute_dtype = layer.compute_dtype
        dtype = "float32" if self.kind == "matmul" else self.compute_dtype
        self.kernel = tf.Variable(tf.constant(k, dtype), trainable=False, name="kernel")
        self.bias = tf.Variable(tf.constant(b, dtype), trainable=False, name="bias")
        self.activation = layer.activation

    def __call__(self, x):
        x = tf.cast(x, self.kernel.dtype)
        if self.kind == "matmul":
            y = tf.matmul(tf.reshape(x, [tf.shape(x)[0], -1]), self.kernel) + self.bias
            y = tf.cast(tf.reshape(y, [-1] + self.out_shape), self.compute_dtype)
            return self.activation(y)
        if self.kind == "subpixel":
            y = tf.nn.bias_add(tf.nn.conv2d(x, self.kernel, 1, "SAME"), self.bias)
            return self.activation(tf.nn.depth_to_space(y, 2))
        if self.kind == "transposed":
            shape = tf.concat([tf.shape(x)[:1], self.out_shape], 0)
            y = tf.nn.conv2d_transpose(x, self.kernel, shape, self.stride, self.padding)
        else:
            y = tf.nn.conv2d(x, self.kernel, self.stride, self.padding)
        return self.activation(tf.nn.bias_add(y, self.bias))


class Folded(tf.Module):
    """A Sequential network in inference mode, BatchNormalization folded (module docstring)."""

    def __init__(self, network):
        super().__init__(name=network.name)
        self.steps = []
        rest = list(network.layers)
        shape = tuple(network.inputs[0].shape)
        while rest:
            layer = rest.pop(0)
            out = layer.compute_output_shape(shape)
            if isinstance(layer, (layers.Conv2D, layers.Conv2DTranspose)):
                norm = None
                after = rest[0] if rest else None
                if isinstance(after, layers.BatchNormalization) and after.axis % 4 == 3:
                    norm = rest.pop(0)  # over channels (the only axis blocks.py normalises)
                self.steps.append(_Conv(layer, norm, shape))
            else:
                self.steps.append(layer)
            shape = out

    def __call__(self, x, training=False):
        if training:
            raise ValueError("a Folded network computes inference mode only")
        for step in self.steps:
            x = step(x)
        return x


class _Serving:
    """The model, with every Sequential network replaced by its Folded copy: the model's own
    methods (score, reconstruct, ...) run unchanged on the copies."""

    def __init__(self, model):
        self._keras_model = model
        self.networks = {name: Folded(value) for name, value in vars(model).items()
                         if isinstance(value, keras.Sequential)}

    def __getattr__(self, name):
        networks = self.__dict__["networks"]
        if name in networks:
            return networks[name]
        model = self.__dict__["_keras_model"]
        method = getattr(type(model), name, None)
        if isinstance(method, types.FunctionType):
            return types.MethodType(method, self)
        return getattr(model, name)


def foldable(model):
    """True if every Sequential network of `model` computes in float32 (module docstring)."""
    return all(v.compute_dtype == "float32" for v in vars(model).values()
               if isinstance(v, keras.Sequential))


def serving(model):
    """`model` for export: its networks folded (module docstring). `.networks` holds the copies
    (their variables must be tracked by whatever saves them)."""
    return _Serving(model)
