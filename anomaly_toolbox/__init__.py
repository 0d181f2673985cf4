"""GAN-based unsupervised anomaly detection: AnoGAN, EGBAD and GANomaly in TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"
