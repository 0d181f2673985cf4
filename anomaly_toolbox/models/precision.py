"""`--precision`: float32, mixed_bfloat16 (CPUs with AVX512_BF16/AMX, recent GPUs),
mixed_float16 (GPUs; the optimizers then scale the loss) or auto.

Layers take the Keras dtype policy in force when they are built, so a model built inside
`policy(name)` computes in that precision with float32 variables; every network hands float32
to the losses and scores (blocks.float32_output), so losses, BCE logits, the latent search and
the scores stay float32.

`auto` uses bfloat16 only where it is known not to cost detection quality: for GANomaly, on
hardware that has bfloat16. Its bfloat16 runs' test AUPRC differed from the same seeds' float32
runs by less than float32 runs differ from seed to seed, with no systematic shift (benchmarks.md,
"Precision study"). EGBAD's did not and the other models were not compared, so they get float32,
as does every machine without bfloat16. The benchmark profiles in experiments/ pin float32, so
their numbers compare across machines.
"""

import contextlib
import functools
import sys

import keras
import tensorflow as tf

from anomaly_toolbox.errors import UsageError

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
BFLOAT16_QUALITY_VERIFIED = ("ganomaly",)  # bfloat16 costs them no test AUPRC


def has_bfloat16(cpuinfo="/proc/cpuinfo"):
    """A GPU (bfloat16 from Ampere on), or a CPU whose flags list avx512_bf16 or amx_bf16."""
    for gpu in tf.config.list_physical_devices("GPU"):
        major = tf.config.experimental.get_device_details(gpu).get("compute_capability", (0,))[0]
        if major >= 8:
            return True
    try:
        with open(cpuinfo) as f:
            flags = f.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve(name, model_name=None):
    """The concrete precision for `name` (for `model_name`, which `auto` depends on), refusing
    unknown names and float16 without a GPU."""
    if name not in PRECISIONS:
        raise UsageError("precision", name, f"one of {', '.join(PRECISIONS)}")
    if name == "auto":
        verified = model_name in BFLOAT16_QUALITY_VERIFIED
        return "mixed_bfloat16" if verified and has_bfloat16() else "float32"
    if name == "mixed_bfloat16" and not has_bfloat16():
        _warn_emulated()
    if name == "mixed_float16" and not tf.config.list_physical_devices("GPU"):
        raise UsageError("precision", name, "a GPU (float16 on a CPU is slower than float32); "
                         "mixed_bfloat16 or float32 on CPUs")
    return name


@functools.cache  # once per process: train and export both resolve the precision
def _warn_emulated():
    """Allowed (it computes what a bfloat16 machine computes), but said, since it costs speed."""
    print("warning: mixed_bfloat16 on hardware without bfloat16 (no avx512_bf16 or amx_bf16 "
          "CPU flag, no Ampere-or-newer GPU) is emulated in software: expect it slower than "
          "float32",
          file=sys.stderr, flush=True)


@contextlib.contextmanager
def policy(name):
    """Keras' global dtype policy set to `name` while a model is built, then restored."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
