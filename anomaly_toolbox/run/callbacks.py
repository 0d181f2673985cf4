"""Keras callbacks of a training run: side work of fit that is not the epoch loop."""

import keras
import numpy as np


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops fit at the first batch whose loss is NaN or inf and remembers which one."""

    bad_step = None

    def on_train_batch_end(self, batch, logs=None):
        if logs and not all(np.isfinite(float(v)) for v in logs.values()):
            self.bad_step = batch + 1
            self.model.stop_training = True


class Progress(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, headed "Epoch k/total" although fit runs one epoch at a time."""

    def __init__(self, total_epochs):
        super().__init__()
        self.total_epochs = total_epochs

    def set_params(self, params):
        super().set_params({**params, "epochs": self.total_epochs})
