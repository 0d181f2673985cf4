"""The peer's side of `python -m benchmarks.peer_quality`: anomalib's GANomaly trained on the
split our cell trains on, in the peer's own virtual environment (run as a file, so anomaly_toolbox
and TensorFlow are never imported). Networks, losses and init are anomalib's own
(`GanomalyModel`, `GeneratorLoss`, `DiscriminatorLoss`); the step repeats its Lightning module's
`training_step` (generator step with retained graph, then the discriminator on the detached
fake). After every epoch the validation and test images are scored with its anomaly score
(the model's forward in eval mode; no min-max rescaling, which would not change a ranking).
It selects nothing: it writes every epoch's scores and the driver selects on validation.

    PEER/bin/python benchmarks/peer_anomalib_train.py --inputs=split.npz --output=scores.npz \
        --epochs=2 --batch_size=64 --n_features=32 --latent=100 --seed=0
"""

import argparse
import json
import os
import platform
import time

import numpy as np


def batches(n, batch_size, seed, epoch):
    """One epoch's shuffled index batches, a function of (seed, epoch); the last partial batch is
    kept (as a DataLoader without drop_last, and as our training does)."""
    order = np.random.default_rng(seed * 100_003 + epoch).permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", required=True, help="npz: x_train, x_val, x_test, NCHW")
    parser.add_argument("--output", required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--n_features", type=int, default=32)
    parser.add_argument("--latent", type=int, default=100)
    parser.add_argument("--weights", default="1,50,1", help="wadv,wcon,wenc")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--beta1", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variant", default="", help="diagnostics only, comma-separated: "
                        "dcgan_init (anomalib's weights_init through .apply), feature_matching "
                        "(the paper's adversarial loss on D's features); default: anomalib as is")
    parser.add_argument("--no_test", action="store_true", help="score validation only "
                        "(diagnostics: what is never scored cannot steer a choice)")
    args = parser.parse_args()
    variant = set(filter(None, args.variant.split(",")))
    if variant - {"dcgan_init", "feature_matching"}:
        parser.error(f"invalid --variant: {args.variant}")

    import anomalib
    import torch
    from anomalib.models.image.ganomaly.loss import DiscriminatorLoss, GeneratorLoss
    from anomalib.models.image.ganomaly.torch_model import GanomalyModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = np.load(args.inputs)
    x_train, x_val, x_test = (torch.from_numpy(np.ascontiguousarray(data[k]))
                              for k in ("x_train", "x_val", "x_test"))
    model = GanomalyModel(input_size=tuple(x_train.shape[2:]), num_input_channels=x_train.shape[1],
                          n_features=args.n_features, latent_vec_size=args.latent,
                          extra_layers=0, add_final_conv_layer=True)
    if "dcgan_init" in variant:
        model.apply(GanomalyModel.weights_init)
    wadv, wcon, wenc = (float(w) for w in args.weights.split(","))
    g_loss_fn, d_loss_fn = GeneratorLoss(wadv, wcon, wenc), DiscriminatorLoss()
    betas = (args.beta1, 0.999)  # anomalib's default beta2
    d_opt = torch.optim.Adam(model.discriminator.parameters(), lr=args.lr, betas=betas)
    g_opt = torch.optim.Adam(model.generator.parameters(), lr=args.lr, betas=betas)

    def train_step(batch):
        padded, fake, latent_i, latent_o = model(batch)
        pred_real, f_real = model.discriminator(padded)
        pred_fake, f_fake = model.discriminator(fake)
        if "feature_matching" in variant:  # GeneratorLoss with the paper's adversarial term
            g_loss = (wadv * torch.mean((f_real - f_fake) ** 2)
                      + wcon * g_loss_fn.loss_con(padded, fake)
                      + wenc * g_loss_fn.loss_enc(latent_i, latent_o))
        else:
            g_loss = g_loss_fn(latent_i, latent_o, padded, fake, pred_real, pred_fake)
        g_opt.zero_grad()
        g_loss.backward(retain_graph=True)
        g_opt.step()
        pred_fake, _ = model.discriminator(fake.detach())
        d_loss = d_loss_fn(pred_real, pred_fake)
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        return g_loss.item(), d_loss.item()

    def score(x, batch_size=256):
        model.eval()
        with torch.no_grad():
            out = [model(x[i:i + batch_size]).pred_score.numpy()
                   for i in range(0, len(x), batch_size)]
        model.train()
        return np.concatenate(out).astype(np.float32)

    val_scores, test_scores, history = [], [], []
    model.train()
    for epoch in range(args.epochs):
        t0, cpu0 = time.perf_counter(), time.process_time()
        losses = [train_step(x_train[idx]) for idx in
                  batches(len(x_train), args.batch_size, args.seed, epoch)]
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        val_scores.append(score(x_val))
        val_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        test_scores.append(score(x_test) if not args.no_test else np.zeros(0, np.float32))
        history.append({"epoch": epoch + 1, "train_s": round(train_s, 1),
                        "val_score_s": round(val_s, 1),
                        "test_score_s": round(time.perf_counter() - t0, 1),
                        "cpu_s": round(time.process_time() - cpu0, 1),  # load-independent
                        "g_loss": float(np.mean([g for g, _ in losses])),
                        "d_loss": float(np.mean([d for _, d in losses]))})
        print(json.dumps(history[-1]), flush=True)
    meta = {"history": history, "threads": args.threads, "variant": sorted(variant),
            "versions": {"anomalib": anomalib.__version__, "torch": torch.__version__,
                         "numpy": np.__version__, "python": platform.python_version(),
                         "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "unset")}}
    np.savez(args.output, val_scores=np.stack(val_scores), test_scores=np.stack(test_scores),
             meta=np.array(json.dumps(meta)))


if __name__ == "__main__":
    main()
