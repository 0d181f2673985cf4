"""Score images with an exported SavedModel and write a CSV (id, score, is_anomaly).

  anomaly-toolbox score --saved_model=runs/ganomaly_mnist_4/saved_model \
      --input=images.npy --output=scores.csv
  (or python -m anomaly_toolbox.score ...)

--input: a .npy array, an IDX images file (.gz or raw), one PNG/JPEG image, or a folder of
PNG/JPEG images. Pixels are 0..255 (any integer or float dtype), square: a model trained on a
folder takes any size (files are resized as training resized them, arrays in the SavedModel), a
benchmark model 28, 32 or its training size. Arrays are
(N, H, W, C), (N, H, W), one image (H, W) or (H, W, C) when C is the model's channel count.
Inputs are read batch by batch (a .npy is memory-mapped), so their size is not limited by RAM.
An image over 16,777,216 pixels (4096 x 4096), file or array, is refused by name; a file's size is
read from its header, before decoding (decompression bombs).
Arrays must hold pixels on the scale the model was trained on (metadata pixel_range, 0..255):
a float array whose values all lie in 0..1 is refused, unless --input_range=0..1 says to
rescale it.
--maps_dir=DIR (a new or empty folder) also writes DIR/<id>_map.png per image, <id> as in the CSV
(a.png_map.png for a.png; image | map overlaid | colour bar, one scale per call) and adds map_max
to the CSV. The CSV is UTF-8; a file name that is not UTF-8 is written as its own bytes.
"""

import csv
import io
import os

import numpy as np
from absl import flags

from anomaly_toolbox import cli

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("saved_model", None, "SavedModel folder written by anomaly_toolbox.train.")
    flags.DEFINE_string("input", None, ".npy file, IDX images file, PNG/JPEG image or a folder "
                        "of them; images of at most 4096 x 4096 pixels.")
    flags.DEFINE_string("output", "scores.csv", "CSV to write.")
    flags.DEFINE_integer("batch_size", 256, "Images read and scored at a time.")
    flags.DEFINE_string("maps_dir", None, "A new or empty folder to also write, per image, "
                        "<id>_map.png (<id> as in the CSV: a.png_map.png for a.png, 12_map.png "
                        "for array row 12): the image and its anomaly map overlaid (one colour "
                        "scale for the whole call, with a colour bar); the CSV gains map_max. "
                        "Models that reconstruct only.")
    flags.DEFINE_string("input_range", None, "The pixel scale of a .npy --input, if not the "
                        "model's (0..255): 0..1 rescales it to the model's. Image and IDX files "
                        "are always 0..255.")


def score_batches(loaded, batches, total, maps_to=None):
    """(raw scores, per-image map maxima or None) of every batch, with a progress bar over
    `total` images; with `maps_to`, each batch's anomaly maps are kept there as maps_<i>.npy
    (only the maxima stay in memory)."""
    from keras.utils import Progbar

    bar, scores, maxima = Progbar(total, unit_name="image"), [], []
    for i, batch in enumerate(batches):
        scores.append(loaded.score(batch).numpy())
        if maps_to:
            maps = loaded.anomaly_map(batch).numpy()
            np.save(os.path.join(maps_to, f"maps_{i}.npy"), maps)
            maxima.append(maps.reshape(len(maps), -1).max(axis=1))
        bar.add(len(scores[-1]))
    return np.concatenate(scores), np.concatenate(maxima) if maps_to else None


def write_maps(maps_dir, ids, batches, kept, vmax):
    """One overlay PNG per image, on the scale 0..vmax (the largest map value of the call)."""
    from anomaly_toolbox.run import overlays

    start = 0
    for i, batch in enumerate(batches):
        maps = np.load(os.path.join(kept, f"maps_{i}.npy"))
        overlays.write(maps_dir, ids[start:start + len(batch)], batch, maps, vmax)
        start += len(batch)


def scores_and_maps(loaded, ids, read, maps_dir):
    """Scores (and, with `maps_dir`, map maxima after writing the overlays); `read()` gives a
    fresh iterator of the input's batches (the overlays need a second pass)."""
    import shutil
    import tempfile

    from anomaly_toolbox.files import ensure_writable_dir, missing_from

    if not maps_dir:
        return score_batches(loaded, read(), len(ids))
    made = missing_from(maps_dir)  # the highest folder this call makes, if any
    ensure_writable_dir(maps_dir, "maps_dir")
    kept = tempfile.mkdtemp(prefix=".maps-", dir=maps_dir)
    try:
        scores, maxima = score_batches(loaded, read(), len(ids), kept)
        write_maps(maps_dir, ids, read(), kept, float(maxima.max()))
        return scores, maxima
    except BaseException:  # a refused input file or a kill: no folder of half the maps
        if made:
            shutil.rmtree(made, ignore_errors=True)
        else:  # it was empty (check_maps_dir_is_new): empty again, so the same command reruns
            for name in os.listdir(maps_dir):
                if os.path.join(maps_dir, name) != kept:
                    os.remove(os.path.join(maps_dir, name))
        raise
    finally:
        shutil.rmtree(kept, ignore_errors=True)


def check_maps_dir_is_new(maps_dir):
    """Refuses a folder holding files: the overlays would replace the user's files (or an
    earlier call's maps) of the same names, and be mixed with them."""
    from anomaly_toolbox.errors import UsageError

    if os.path.isdir(maps_dir) and os.listdir(maps_dir):
        raise UsageError("maps_dir", maps_dir, "a new or empty folder (this one holds files)")


def check_output_is_no_map(output, maps_dir):
    """The CSV is written after the maps: as --maps_dir itself it failed after all the work,
    leaving the maps; as a map's name (a.png_map.png) in it, it replaced that map silently."""
    from anomaly_toolbox.errors import UsageError
    from anomaly_toolbox.run.overlays import png_name

    path, maps = os.path.realpath(output), os.path.realpath(maps_dir)
    if path == maps or (os.path.dirname(path) == maps and path.endswith(png_name(""))):
        raise UsageError("output", output, "a file path other than --maps_dir and its "
                         "<id>_map.png maps")


def check_maps_dir(maps_dir, metadata, saved_model):
    """Refuses a model without anomaly_map before any work (the folder was checked already)."""
    from anomaly_toolbox.errors import UsageError

    if maps_dir is not None and not metadata.get("anomaly_map"):
        raise UsageError("maps_dir", maps_dir, f"a model with anomaly_map ({saved_model} has none: "
                         f"it does not reconstruct, or was exported before anomaly maps)")


def write_csv(path, ids, scores, threshold, map_max=None):
    """UTF-8; a file name that is not UTF-8 is written as its own bytes (surrogateescape), so
    its id finds the file again."""
    from anomaly_toolbox.errors import UsageError
    from anomaly_toolbox.files import write_atomic

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")  # csv's default "\r\n" leaves \r in awk or cut
    writer.writerow(["id", "score", "is_anomaly"] + (["map_max"] if map_max is not None else []))
    for row, (i, s) in enumerate(zip(ids, scores)):
        writer.writerow([i, f"{s:.9g}", int(s >= threshold)] +
                        ([f"{map_max[row]:.6g}"] if map_max is not None else []))
    try:
        write_atomic(path, out.getvalue().encode("utf-8", "surrogateescape"), "wb")
    except OSError as e:
        raise UsageError("output", path, f"a writable file path ({e.strerror})") from e


def check_output_is_no_run_file(output):
    """Refuses an --output that would replace a file of a SavedModel or a run: a CSV written
    over saved_model.pb (tab completion in the --saved_model folder) destroyed the model it
    scored, over results.json a run's results. New files and CSVs in a run folder are fine."""
    from anomaly_toolbox.errors import UsageError
    from anomaly_toolbox.files import checkpoints_above, saved_model_above

    model = saved_model_above(os.path.realpath(output))  # a link to its folder too
    if model:
        raise UsageError("output", output, f"a file outside any SavedModel ({model} is one)")
    checkpoints = checkpoints_above(output)  # over checkpoints/best/checkpoint: a lost run
    if checkpoints:
        raise UsageError("output", output, f"a file outside any run's checkpoints ({checkpoints} "
                         "is one)")
    folder = os.path.dirname(os.path.abspath(output))
    run = [n for n in ("run.json", "results.json") if os.path.isfile(os.path.join(folder, n))]
    if run and os.path.isfile(output) and not output.lower().endswith(".csv"):
        raise UsageError("output", output, f"a new file or a CSV: this one belongs to the run in "
                         f"{folder} (it holds {run[0]})")


def check():
    """Every flag that can be checked before TensorFlow is imported (see cli.main)."""
    from anomaly_toolbox.data.inputs import (check_batch_size, check_input, input_files,
                                             parse_input_range)
    from anomaly_toolbox.errors import UsageError
    from anomaly_toolbox.files import check_writable_dir, check_writable_file

    check_batch_size(FLAGS.batch_size)
    if FLAGS.saved_model is None or not os.path.isdir(FLAGS.saved_model):
        raise UsageError("saved_model", FLAGS.saved_model, "an existing SavedModel folder")
    check_input(FLAGS.input, parse_input_range(FLAGS.input_range))
    check_writable_file(FLAGS.output, "output", reading=input_files(FLAGS.input),
                        made_first=FLAGS.maps_dir)
    check_output_is_no_run_file(FLAGS.output)
    if FLAGS.maps_dir is not None:
        check_writable_dir(FLAGS.maps_dir, "maps_dir")  # made only once scoring starts
        check_maps_dir_is_new(FLAGS.maps_dir)
        check_output_is_no_map(FLAGS.output, FLAGS.maps_dir)


def body():
    from anomaly_toolbox.data.inputs import input_rule, parse_input_range, pixel_range, read_batches
    from anomaly_toolbox.run import export

    loaded, metadata = export.load(FLAGS.saved_model)
    check_maps_dir(FLAGS.maps_dir, metadata, FLAGS.saved_model)
    channels, resize_to, sides = input_rule(metadata)
    how = dict(channels=channels, resize_to=resize_to, batch_size=FLAGS.batch_size, sides=sides,
               model_range=pixel_range(metadata), input_range=parse_input_range(FLAGS.input_range))
    ids, _ = read_batches(FLAGS.input, **how)
    scores, map_max = scores_and_maps(loaded, ids, lambda: read_batches(FLAGS.input, **how)[1],
                                      FLAGS.maps_dir)
    threshold = float(loaded.threshold.numpy())
    write_csv(FLAGS.output, ids, scores, threshold, map_max)
    print(f"scored {len(scores)} images ({int((scores >= threshold).sum())} at or above the "
          f"validation threshold {threshold:.4g}) -> {FLAGS.output}")


if __name__ == "__main__":
    cli.main(define_flags, body, check)
