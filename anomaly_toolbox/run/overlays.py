"""Anomaly-map overlays for `score --maps_dir`: per image, the image beside the image with its
map overlaid in inferno (perceptually uniform), and a colour bar. Every image of one call
shares the colour scale 0..(largest map value of the call), so colours compare across images.
Drawn with numpy and PIL, not a matplotlib figure per image: a folder of 100k images must
not take hours."""

import io

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw

from anomaly_toolbox.files import write_atomic

CMAP, ALPHA, MIN_SIDE, BAR_WIDTH = "inferno", 0.55, 160, 14


def colour(values, vmax):
    """uint8 RGB (..., 3) of map values on the shared 0..vmax scale."""
    scaled = np.clip(np.asarray(values, np.float64) / (vmax or 1.0), 0.0, 1.0)
    return (colormaps[CMAP](scaled)[..., :3] * 255).astype(np.uint8)


def _rgb(image):
    """uint8 (H, W, 3) from a 0..255 image with 1 or 3 channels."""
    image = np.clip(np.asarray(image, np.float64), 0, 255).astype(np.uint8)
    return np.repeat(image, 3, -1) if image.shape[-1] == 1 else image


def overlay_png(image, amap, vmax):
    """PNG bytes: [image | image with map | colour bar labelled 0 and vmax], upscaled (nearest)
    so that small images stay visible."""
    rgb = _rgb(image)
    blended = ((1 - ALPHA) * rgb + ALPHA * colour(amap, vmax)).astype(np.uint8)
    zoom = max(1, -(-MIN_SIDE // rgb.shape[0]))
    panels = [np.kron(p, np.ones((zoom, zoom, 1), np.uint8)) for p in (rgb, blended)]
    side = panels[0].shape[0]
    bar = colour(np.linspace(vmax, 0, side)[:, None].repeat(BAR_WIDTH, 1), vmax)
    gap = np.full((side, 4, 3), 255, np.uint8)
    label = np.full((side, 56, 3), 255, np.uint8)
    canvas = Image.fromarray(np.concatenate([panels[0], gap, panels[1], gap, bar, label], 1))
    draw = ImageDraw.Draw(canvas)
    x = canvas.width - label.shape[1] + 3
    draw.text((x, 0), f"{vmax:.3g}", fill=(0, 0, 0))
    draw.text((x, side - 12), "0", fill=(0, 0, 0))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def png_name(image_id):
    """`<id>_map.png`, the CSV's id in full: `0007.png_map.png` for the file 0007.png,
    `12_map.png` for array row 12. Unique as ids are: a.png and a.jpg do not share a map."""
    return f"{image_id}_map.png"


def write(folder, ids, images, maps, vmax):
    """Writes one overlay PNG per image into `folder`, atomically."""
    import os

    for image_id, image, amap in zip(ids, images, maps):
        write_atomic(os.path.join(folder, png_name(image_id)), overlay_png(image, amap, vmax),
                     "wb")
