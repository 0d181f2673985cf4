"""What the scorers check in users' input that a SavedModel's graph does not: the pixel scale
(a float array already scaled to 0..1 is scored silently as a nearly black image) and image
sizes declared in a file's header (decompression bombs), before the data is read.

Used by `anomaly-toolbox score` (score.py) and the Python API (api.Detector); light: no
TensorFlow import.
"""

import numpy as np

MODEL_RANGE = (0, 255)  # the pixel scale of SavedModels without metadata pixel_range
INPUT_RANGES = {"0..255": (0, 255), "0..1": (0, 1)}


def pixel_range(metadata):
    """The pixel scale a SavedModel was trained on (every model so far: 0..255)."""
    return tuple(metadata.get("pixel_range", MODEL_RANGE))


def parse_input_range(value, argument="input_range"):
    """None (the model's own scale) or "0..1" / "0..255" -> (low, high)."""
    from anomaly_toolbox.errors import UsageError

    if value is None or value in INPUT_RANGES:
        return INPUT_RANGES.get(value)
    raise UsageError(argument, value, " or ".join(INPUT_RANGES))


def to_model_range(batch, name="input", model_range=MODEL_RANGE, input_range=None,
                   option="--input_range={}"):
    """`batch` on the model's pixel scale. Values outside it are refused, and so is a float
    batch whose values all lie in 0..1 given to a 0..255 model (already scaled: it would be
    scored as a nearly black image, silently); `input_range` (the user's `option`) declares
    the batch's scale instead, and rescales it; `option` formats how the user passes it."""
    from anomaly_toolbox.errors import UsageError

    low, high = model_range
    if batch.dtype == np.uint8 and input_range is None and model_range == MODEL_RANGE:
        return batch
    least, most = (float(batch.min()), float(batch.max())) if batch.size else (low, low)
    got = f"got values from {least:g} to {most:g}"
    if input_range is not None:
        in_low, in_high = input_range
        if least < in_low or most > in_high:
            raise UsageError("input", name, f"pixels on {in_low}..{in_high}, as "
                             f"{option.format(f'{in_low}..{in_high}')} says; {got}")
        if tuple(input_range) == tuple(model_range):
            return batch
        scale = (high - low) / (in_high - in_low)
        return ((np.asarray(batch, np.float32) - in_low) * scale + low).astype(np.float32)
    if least < low or most > high:
        hint = (f"; divide by 255, or pass {option.format('0..255')} to have them rescaled"
                if high <= 1 and least >= 0 and most <= 255 else "")
        raise UsageError("input", name, f"pixels on {low}..{high}, the model's scale; {got}{hint}")
    if high > 1 and np.issubdtype(batch.dtype, np.floating) and 0 < most <= 1:
        raise UsageError("input", name, f"pixels on {low}..{high}, the model's scale; these float "
                         f"values all lie in 0..1: multiply them by 255, or pass "
                         f"{option.format('0..1')} to have them rescaled")
    return batch


def check_idx_header(path):
    """Refuses an IDX images file whose header declares images over the size cap, before the
    (possibly gzipped: a decompression bomb) data is read; other faults are read_idx's."""
    import gzip
    import struct

    from anomaly_toolbox.data.folders import CAP, MAX_PIXELS
    from anomaly_toolbox.errors import UsageError

    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            header = f.read(16)
    except (OSError, EOFError):
        return
    if len(header) == 16 and header[:4] == b"\0\0\x08\x03":
        height, width = struct.unpack(">II", header[8:])
        if height * width > MAX_PIXELS:
            raise UsageError("input", path, f"images of at most {CAP}, the IDX header says "
                             f"{height}x{width}")
