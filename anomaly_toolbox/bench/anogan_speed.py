"""Benchmark (not a test): AnoGAN's batched latent search vs the same search image by image.

  python -m anomaly_toolbox.bench.anogan_speed --batch_size=256 --steps=50 --filters=64,128,256

Builds an UNTRAINED AnoGAN (the cost of the search does not depend on the weights), takes
`batch_size` real MNIST test images, and times one compiled score function (the tf.function
that run.scoring.score_images and the SavedModel use) called (a) once on the whole batch and
(b) once per image, on the first --single_images images, extrapolated to the batch. Prints
images/s of each, the speed-up and the largest score difference on the common images.
"""

import time

from absl import flags

from anomaly_toolbox import cli

FLAGS = flags.FLAGS


def define_flags():
    """Defined on demand, so that importing this module (tests do) defines no flags."""
    flags.DEFINE_integer("batch_size", 256, "Images searched together.")
    flags.DEFINE_integer("steps", 50, "Search steps Γ.")
    flags.DEFINE_list("filters", ["64", "128", "256"], "DCGAN widths.")
    flags.DEFINE_integer("latent_dim", 100, "Latent dimension.")
    flags.DEFINE_string("search_init", "zeros", "zeros, sample or best_of_k.")
    flags.DEFINE_integer("single_images", 16, "Images timed one by one (then extrapolated).")
    flags.DEFINE_integer("naive_images", 4, "Images timed with the usual unbatched AnoGAN loop "
                         "(z a tf.Variable, a keras Adam, Γ compiled steps driven from Python); 0 skips.")
    flags.DEFINE_integer("repeats", 1, "Timed batched calls (after one warm-up call).")
    flags.DEFINE_string("data_dir", None, "Folder holding mnist/*-ubyte.gz "
                        "(default: $ANOMALY_TOOLBOX_DATA_DIR, then system folders, then tfds).")


def body():
    import keras
    import numpy as np
    import tensorflow as tf

    from anomaly_toolbox import models
    from anomaly_toolbox.data import datasets
    from anomaly_toolbox.data.preprocessing import IMAGE_SIZE, to_model_input

    keras.utils.set_random_seed(0)
    cls = models.get("anogan")
    config = {**cls.DEFAULTS, "latent_dim": FLAGS.latent_dim, "search_steps": FLAGS.steps,
              "filters": [int(f) for f in FLAGS.filters], "search_init": FLAGS.search_init}
    model = cls(**config, channels=1)
    model.compile()
    raw = datasets.load("mnist", FLAGS.data_dir)
    x = to_model_input(raw.x_test[:FLAGS.batch_size])
    n, n_single = int(x.shape[0]), min(FLAGS.single_images, int(x.shape[0]))
    score = tf.function(model.score,
                        input_signature=[tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, None])])
    print(f"AnoGAN search, untrained model (speed does not depend on the weights): "
          f"filters={config['filters']} latent_dim={config['latent_dim']} Γ={FLAGS.steps} "
          f"init={FLAGS.search_init}; {n} MNIST test images; TF {tf.__version__}", flush=True)

    t0 = time.perf_counter()
    score(x[:2]).numpy()  # traces once; every later call reuses the graph, whatever the batch
    print(f"trace + warm-up: {time.perf_counter() - t0:.1f}s", flush=True)

    t0 = time.perf_counter()
    for _ in range(FLAGS.repeats):
        batched = score(x).numpy()
    batched_s = (time.perf_counter() - t0) / FLAGS.repeats
    print(f"batched:        {n} images in {batched_s:.2f}s = {n / batched_s:8.1f} images/s",
          flush=True)

    score(x[:1]).numpy()  # warm-up at batch 1
    t0 = time.perf_counter()
    single = np.concatenate([score(x[i:i + 1]).numpy() for i in range(n_single)])
    single_s = (time.perf_counter() - t0) / n_single
    print(f"image by image: {n_single} images timed, {single_s:.3f}s each = "
          f"{1 / single_s:8.1f} images/s (extrapolated to {n} images: {single_s * n:.1f}s)")
    print(f"speed-up: {single_s * n / batched_s:.1f}x")
    print(f"max |score difference| on the {n_single} common images: "
          f"{np.abs(batched[:n_single] - single).max():.3g} (scores ~{np.mean(batched):.3g})")
    if FLAGS.naive_images > 0:
        naive_s = _naive(model, x[:FLAGS.naive_images], keras, tf)
        print(f"usual unbatched loop (keras Adam on a z variable, one tf.function call per step): "
              f"{FLAGS.naive_images} images timed, {naive_s:.3f}s each = {1 / naive_s:8.1f} "
              f"images/s; batched speed-up over it: {naive_s * n / batched_s:.1f}x")


def _naive(model, x, keras, tf):
    """The common AnoGAN implementation: per image, a fresh z variable and optimizer, Γ
    optimizer steps each a separate call. Same loss, same Adam rule and learning rate."""
    from anomaly_toolbox.models.anogan import ADAM_BETA_1, ADAM_BETA_2, ADAM_EPSILON

    z = tf.Variable(tf.zeros([1, model.latent_dim]))
    optimizer = keras.optimizers.Adam(model.search_learning_rate, ADAM_BETA_1, ADAM_BETA_2,
                                      ADAM_EPSILON)
    optimizer.build([z])

    @tf.function
    def step(image):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model.search_losses(image, z))
        optimizer.apply_gradients([(tape.gradient(loss, z), z)])
        return loss

    def search(image):
        z.assign(model.initial_latents(image))
        for var in optimizer.variables:
            var.assign(tf.zeros_like(var))
        for _ in range(model.search_steps):
            step(image)
        return model.search_losses(image, z).numpy()

    search(x[:1])  # warm-up / trace
    t0 = time.perf_counter()
    for i in range(int(x.shape[0])):
        search(x[i:i + 1])
    return (time.perf_counter() - t0) / int(x.shape[0])


if __name__ == "__main__":
    cli.main(define_flags, body)
