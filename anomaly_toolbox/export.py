"""Export a finished run's detector again, in another precision.

  anomaly-toolbox export --run_dir=runs/ganomaly_folder --precision=float32 \
      --output_dir=runs/ganomaly_folder/saved_model_float32
  (or python -m anomaly_toolbox.export ...)

A run trained with --precision=mixed_bfloat16 exports a SavedModel that computes in bfloat16
(fast on CPUs with AVX512_BF16/AMX); this writes the same weights as a SavedModel computing in
float32, e.g. for machines without bfloat16 kernels. Scores are float32 either way.
"""

from absl import flags

from anomaly_toolbox import cli

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("run_dir", None, "A finished run folder written by anomaly_toolbox.train.")
    flags.DEFINE_string("precision", "float32", "float32, mixed_bfloat16 (mixed_float16: GPU) or "
                        "auto (as train's: bfloat16 for GANomaly on hardware with bfloat16).")
    flags.DEFINE_string("output_dir", None, "Folder for the new SavedModel (must not exist).")


def check():
    """The flags that can be checked before TensorFlow is imported (see cli.main)."""
    from anomaly_toolbox.errors import UsageError

    for name in ("run_dir", "output_dir"):
        if not getattr(FLAGS, name):
            raise UsageError(name, getattr(FLAGS, name), "a folder")


def body():
    from anomaly_toolbox.run import export

    path, precision = export.reexport(FLAGS.run_dir, FLAGS.output_dir, FLAGS.precision)
    print(f"exported in {precision}: {path}")  # auto: what it chose


if __name__ == "__main__":
    cli.main(define_flags, body, check)
