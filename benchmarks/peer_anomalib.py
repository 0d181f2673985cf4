"""The peer's side of `python -m benchmarks.peer`: anomalib's GANomaly timed as its
users run it, in the peer's own virtual environment (run as a file, so anomaly_toolbox and
TensorFlow are never imported). Its networks and losses are anomalib's own; the train step
repeats its Lightning module's `training_step` (generator step with retained graph, then the
discriminator on the detached fake). Prints one JSON line.

    PEER/bin/python benchmarks/peer_anomalib.py --precision=float32 --data_dir=...
"""

import argparse
import gzip
import json
import os
import statistics
import time

import numpy as np


def mnist_batches(data_dir, batch_size, count):
    """The first `count` x `batch_size` MNIST train images, padded to 32x32 and scaled to
    [-1, 1] exactly as anomaly_toolbox's to_model_input does."""
    with gzip.open(os.path.join(data_dir, "mnist", "train-images-idx3-ubyte.gz")) as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    x = np.pad(raw[:batch_size * count], ((0, 0), (2, 2), (2, 2))).astype(np.float32) / 127.5 - 1
    return [x[i * batch_size:(i + 1) * batch_size, None] for i in range(count)]


def windows(fn, count, min_seconds):
    """img/s of `count` windows, each long enough to keep timer noise low."""
    fn()
    t0 = time.perf_counter()
    fn()
    steps = max(1, int(np.ceil(min_seconds / (time.perf_counter() - t0))))
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        images = sum(fn() for _ in range(steps))
        out.append(images / (time.perf_counter() - t0))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default="float32")
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--min_window_s", type=float, default=3.0)
    parser.add_argument("--batch_size", type=int, default=64)
    args = parser.parse_args()

    import anomalib
    import torch
    from anomalib.models.image.ganomaly.loss import DiscriminatorLoss, GeneratorLoss
    from anomalib.models.image.ganomaly.torch_model import GanomalyModel

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    model = GanomalyModel(input_size=(32, 32), num_input_channels=1, n_features=64,
                          latent_vec_size=100, extra_layers=0, add_final_conv_layer=True)
    g_loss_fn, d_loss_fn = GeneratorLoss(1, 50, 1), DiscriminatorLoss()
    d_opt = torch.optim.Adam(model.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g_opt = torch.optim.Adam(model.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    batches = [torch.from_numpy(b) for b in mnist_batches(args.data_dir, args.batch_size, 8)]
    autocast = args.precision == "mixed_bfloat16"
    i = [0]

    def train_step():
        batch = batches[i[0] % len(batches)]
        i[0] += 1
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            padded, fake, latent_i, latent_o = model(batch)
            pred_real, _ = model.discriminator(padded)
            pred_fake, _ = model.discriminator(fake)
            g_loss = g_loss_fn(latent_i, latent_o, padded, fake, pred_real, pred_fake)
        g_opt.zero_grad()
        g_loss.backward(retain_graph=True)
        g_opt.step()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            pred_fake, _ = model.discriminator(fake.detach())
            d_loss = d_loss_fn(pred_real, pred_fake)
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        return len(batch)

    model.train()
    train = windows(train_step, args.windows, args.min_window_s)

    def score():
        batch = batches[i[0] % len(batches)]
        i[0] += 1
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            model(batch).pred_score.float().numpy()
        return len(batch)

    model.eval()
    infer = windows(score, args.windows, args.min_window_s)
    print(json.dumps({"side": "anomalib", "precision": args.precision,
                      "train_img_s": statistics.median(train), "infer_img_s": statistics.median(infer),
                      "versions": {"anomalib": anomalib.__version__, "torch": torch.__version__}}))


if __name__ == "__main__":
    main()
