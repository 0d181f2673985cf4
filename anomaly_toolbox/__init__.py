"""GAN-based unsupervised anomaly detection: AnoGAN, EGBAD and GANomaly in TensorFlow 2 / Keras 3."""

import os

# TensorFlow turns its oneDNN kernels on only for CPUs with AVX-512/AMX; on AVX2 machines they are
# off, and turning them on made train steps 1.56-1.61x faster here with deterministic results (see
# benchmarks.md, "Speed: process-level settings"). It must be set before TensorFlow is imported; export
# TF_ENABLE_ONEDNN_OPTS=0 to opt out. Results record the value.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
