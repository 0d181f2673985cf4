import numpy as np
import tensorflow as tf
from conftest import assert_close, tiny_model


def test_training_lowers_reconstruction_error_and_scores_are_per_image(batch):
    model = tiny_model("autoencoder", learning_rate=2e-3)
    step = tf.function(model.train_step)
    first = float(step(batch)["l1_loss"])  # a mean over one step: that step's loss
    for _ in range(30):
        step(batch)
    model.reset_metrics()  # as fit does at each epoch's start
    assert float(step(batch)["l1_loss"]) < first
    model.fit(batch, batch_size=32, epochs=1, verbose=0)
    scores = model.score(batch).numpy()
    assert scores.shape == (64,) and np.all(scores > 0)
    assert_close(np.concatenate([model.score(batch[i:i + 1]) for i in range(4)]), scores[:4])
    assert_close(scores, tf.reduce_mean(tf.abs(batch - model.reconstruct(batch)), axis=[1, 2, 3]))
