"""Writes Fashion-MNIST items as 64x64 tinted RGB PNG folders: a stand-in for a folder of
product photos, to try `--dataset=folder:PATH --image_size=64` (README, "Your own images").

python examples/make_fashion_folders.py [DATA_DIR] [OUT]

OUT (default my_fashion/) gets train/ (2,000 normal items: every category but trousers),
test/normal/ (400), test/anomalous/ (400 trousers) and new/ (20 items, half trousers, at
48x48, which the scorer resizes as training did). Each item gets a random tint from a fixed
seed, drawn the same way for normal and anomalous items, so colour is no clue.
"""
import os
import sys

import numpy as np
from PIL import Image

from anomaly_toolbox.data import datasets

ANOMALY = 1  # trousers
fashion = datasets.load("fashion_mnist", sys.argv[1] if len(sys.argv) > 1 else None)
out = sys.argv[2] if len(sys.argv) > 2 else "my_fashion"
rng = np.random.default_rng(0)
normal = fashion.x_train[fashion.y_train != ANOMALY]
anomalous = fashion.x_train[fashion.y_train == ANOMALY]
new = np.concatenate([fashion.x_test[fashion.y_test != ANOMALY][:10],
                      fashion.x_test[fashion.y_test == ANOMALY][:10]])


def tinted(image, size):
    gray = np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC), np.float32)
    tint = rng.uniform(0.35, 1.0, 3)
    return Image.fromarray(np.clip(gray[..., None] * tint, 0, 255).astype(np.uint8))


for folder, images, size in [("train", normal[:2000], 64), ("test/normal", normal[2000:2400], 64),
                             ("test/anomalous", anomalous[:400], 64), ("new", new, 48)]:
    os.makedirs(os.path.join(out, folder), exist_ok=True)
    for i, image in enumerate(images):
        tinted(image, size).save(os.path.join(out, folder, f"{i:04d}.png"))
print(f"wrote {out}/train (2000), test/normal (400), test/anomalous (400), new (20, 48x48)")
