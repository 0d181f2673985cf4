"""Writes a few MNIST digits as PNG folders, to try `--dataset=folder:PATH` (README, "Your own images").

python examples/make_digit_folders.py [DATA_DIR]
"""
import os
import sys

from PIL import Image
from anomaly_toolbox.data import datasets

mnist = datasets.load("mnist", sys.argv[1] if len(sys.argv) > 1 else None)
normal, sevens = mnist.x_test[mnist.y_test != 7], mnist.x_test[mnist.y_test == 7]
for folder, images in [("my_digits/train", normal[:2000]), ("my_digits/test/normal", normal[2000:2200]),
                       ("my_digits/test/anomalous", sevens[:200]), ("new_images", mnist.x_train[:20])]:
    os.makedirs(folder, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(f"{folder}/{i:04d}.png")
