"""The checkpoints of a run: `last` (resume points, each an epoch's one commit recording the best
epoch; the two newest are kept, so one damaged by a crash or a disk is not the end of the run)
and `best` (a copy of the last checkpoint of the best-validation epoch).

A checkpoint is trusted only after every tensor reads back (TensorFlow checks each against its
stored CRC): a damaged newest resume point falls back to the one before with a warning, and
training, deterministic per epoch, redoes the epochs in between to the same numbers. When no
checkpoint loads, the run stops with one line naming the file; it never restarts silently.
"""

import glob
import os
import re
import shutil
import sys

import tensorflow as tf

from anomaly_toolbox.errors import DataError
from anomaly_toolbox.files import write_atomic

KEEP_LAST = 2


def checkpoint_managers(model, run_dir):
    """(run state variables, manager of the last epochs, manager of the best-validation epoch)."""
    state = {"epoch": tf.Variable(0, dtype=tf.int64, trainable=False),
             "best_auprc": tf.Variable(-1.0, dtype=tf.float64, trainable=False),
             "best_epoch": tf.Variable(0, dtype=tf.int64, trainable=False),
             "train_seconds": tf.Variable(0.0, dtype=tf.float64, trainable=False)}
    last = tf.train.CheckpointManager(tf.train.Checkpoint(model=model, **state),
                                      run_dir.last_checkpoints, KEEP_LAST)
    best = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), run_dir.best_checkpoints, 1)
    return state, last, best


def _reason(e):
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def damage(prefix):
    """None if the checkpoint at `prefix` reads back whole, else (damaged file, reason): an index
    that does not parse, or data that is missing, short or fails its checksum."""
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as e:  # OpError: not an sstable, missing file, ...
        return prefix + ".index", _reason(e)
    try:
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as e:  # OpError (checksum, missing shard), IndexError (short read)
        shards = sorted(glob.glob(glob.escape(prefix) + ".data-*"))
        return (shards or [prefix + ".data-00000-of-00001"])[0], _reason(e)
    return None


def _epoch(prefix):
    return int(re.search(r"ckpt-(\d+)$", prefix).group(1))


def last_prefixes(run_dir):
    """The resume points on disk, newest first: from the files, not the `checkpoint` index,
    which a damaged or stale copy would make empty (TensorFlow then silently starts over)."""
    found = glob.glob(os.path.join(glob.escape(run_dir.last_checkpoints), "ckpt-*.index"))
    prefixes = [p[:-len(".index")] for p in found if re.search(r"ckpt-\d+\.index$", p)]
    return sorted(prefixes, key=_epoch, reverse=True)


def _warn(message):
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _unloadable(path, reason, run_dir, what):
    return DataError(f"damaged checkpoint {path} ({reason}); {what}: delete {run_dir} (or pass "
                     f"another --output_dir) and run the same command again to train from scratch")


def restore_last(run_dir, last):
    """Restores the newest resume point that loads into `last`'s checkpoint; returns its prefix,
    or None for a fresh run. Damaged ones are skipped with a warning naming the file; if none
    loads, DataError (nothing is overwritten)."""
    damaged = []
    for prefix in last_prefixes(run_dir):
        problem = damage(prefix)
        if problem is None:
            try:
                last.checkpoint.restore(prefix).assert_existing_objects_matched()
            except (AssertionError, ValueError, tf.errors.OpError) as e:  # another model's
                problem = prefix + ".index", _reason(e)
        if problem is None:
            for path, reason in damaged:
                _warn(f"damaged checkpoint {path} ({reason}); resuming from the one before, "
                      f"{os.path.basename(prefix)}: its later epochs are trained again")
            return prefix
        damaged.append(problem)
    if damaged:
        raise _unloadable(*damaged[0], run_dir, "no resume point in checkpoints/last loads")
    return None


def publish_best(run_dir, last_path, epoch):
    """Copies the committed last checkpoint, epoch `epoch` and the best so far, to
    checkpoints/best as ckpt-<epoch>, then drops the older best. Each file lands by rename, and
    the `checkpoint` index switches last, so a kill leaves the previous best readable."""
    folder = run_dir.best_checkpoints
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, f"ckpt-{epoch}")
    for src in sorted(glob.glob(glob.escape(last_path) + ".*"), key=lambda p: p.endswith(".index")):
        tmp = os.path.join(folder, ".copy-" + os.path.basename(src))
        shutil.copyfile(src, tmp)
        os.replace(tmp, target + src[len(last_path):])  # the index after the data it describes
    # the index tf.train.latest_checkpoint reads (what update_checkpoint_state writes, without
    # its deprecation warning on every improving epoch), written atomically
    name = os.path.basename(target)
    write_atomic(os.path.join(folder, "checkpoint"),
                 f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
    for old in glob.glob(os.path.join(glob.escape(folder), "ckpt-*")):
        if not old.startswith(target + "."):
            os.remove(old)


def repair_best(run_dir, state):
    """Makes checkpoints/best hold the best epoch again when it does not: a kill between an
    improving epoch's commit and its copy leaves it behind (repaired silently), a damaged one
    would only be found at the finish (repaired with a warning). The copy comes from a resume
    point of that epoch; returns (file, reason) if there is none, else None."""
    epoch = int(state["best_epoch"].numpy())
    best = tf.train.latest_checkpoint(run_dir.best_checkpoints)
    if not epoch:
        return None
    if best and best.endswith(f"ckpt-{epoch}"):
        problem = damage(best)
        if problem is None:
            return None
    else:
        problem = None
    for prefix in last_prefixes(run_dir):
        if _epoch(prefix) == epoch and damage(prefix) is None:
            if problem:
                _warn(f"damaged checkpoint {problem[0]} ({problem[1]}); copied epoch {epoch} "
                      f"again from {prefix}")
            publish_best(run_dir, prefix, epoch)
            return None
    return problem or (os.path.join(run_dir.best_checkpoints, "checkpoint"),
                       f"names {os.path.basename(best) if best else 'no checkpoint'}, "
                       f"not the best epoch, {epoch}")


def best_checkpoint(run_dir, state):
    """The checkpoint of the selected epoch for the finish (repaired as above); DataError naming
    the damaged file if no copy of that epoch loads."""
    problem = repair_best(run_dir, state)
    if problem:
        raise _unloadable(*problem, run_dir,
                          f"no resume point holds epoch {int(state['best_epoch'].numpy())}")
    return tf.train.latest_checkpoint(run_dir.best_checkpoints)


# what atomic writes leave behind when killed before their rename (files.write_atomic:
# ".<name>-*", export: ".saved_model-*", publish_best: ".copy-*", TensorFlow: "ckpt-<n>_temp",
# "checkpoint.tmp*"); never read, so only their space is at stake
_TEMPORARIES = {"": (".run.json-", ".history.json-", ".results.json-", ".scores.npz-",
                     ".saved_model-", ".test_", ".write-test-"),
                "checkpoints": (".best_val_scores_epoch",),
                os.path.join("checkpoints", "best"): (".copy-", ".checkpoint-"),
                os.path.join("checkpoints", "last"): ("checkpoint.tmp",)}


def checked_best(run_dir):
    """checkpoints/best of a finished run, for tools that restore it (re-export, sweep);
    DataError naming the damaged file: a finished run is never retrained to repair it."""
    best = tf.train.latest_checkpoint(run_dir.best_checkpoints)
    problem = damage(best) if best else (run_dir.best_checkpoints, "no checkpoint")
    if problem:
        raise DataError(f"damaged checkpoint {problem[0]} ({problem[1]}); the run's saved_model/ "
                        "still scores as it did; for new weights, train into a new --output_dir")
    return best


def sweep_temporaries(run_dir):
    """Removes the temporaries of a killed earlier process; call with the folder's lock held."""
    for sub, prefixes in _TEMPORARIES.items():
        folder = os.path.join(run_dir.path, sub)
        names = os.listdir(folder) if os.path.isdir(folder) else []
        for name in names:
            path = os.path.join(folder, name)
            if name.startswith(prefixes) or (sub.endswith("last") and name.endswith("_temp")):
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
