"""The checkpoints of a run: `last` (resume point and the epoch's one commit, recording the best
epoch) and `best` (a copy of the last checkpoint of the best-validation epoch)."""

import glob
import os
import shutil

import tensorflow as tf

from anomaly_toolbox.files import write_atomic


def checkpoint_managers(model, run_dir):
    """(run state variables, manager of the last epoch, manager of the best-validation epoch)."""
    state = {"epoch": tf.Variable(0, dtype=tf.int64, trainable=False),
             "best_auprc": tf.Variable(-1.0, dtype=tf.float64, trainable=False),
             "best_epoch": tf.Variable(0, dtype=tf.int64, trainable=False),
             "train_seconds": tf.Variable(0.0, dtype=tf.float64, trainable=False)}
    last = tf.train.CheckpointManager(tf.train.Checkpoint(model=model, **state),
                                      run_dir.last_checkpoints, 1)
    best = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), run_dir.best_checkpoints, 1)
    return state, last, best


def publish_best(run_dir, last_path, epoch):
    """Copies the committed last checkpoint, epoch `epoch` and the best so far, to
    checkpoints/best as ckpt-<epoch>, then drops the older best."""
    folder = run_dir.best_checkpoints
    os.makedirs(folder, exist_ok=True)
    target = os.path.join(folder, f"ckpt-{epoch}")
    for src in glob.glob(glob.escape(last_path) + ".*"):
        shutil.copyfile(src, target + src[len(last_path):])
    # the index tf.train.latest_checkpoint reads (what update_checkpoint_state writes, without
    # its deprecation warning on every improving epoch), written atomically
    name = os.path.basename(target)
    write_atomic(os.path.join(folder, "checkpoint"),
                 f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
    for old in glob.glob(os.path.join(glob.escape(folder), "ckpt-*")):
        if not old.startswith(target + "."):
            os.remove(old)


def repair_best(run_dir, state, last_path):
    """A kill between an improving epoch's commit and its copy to checkpoints/best leaves best
    one epoch behind; the last checkpoint then holds exactly the best epoch, so copy it now."""
    epoch = int(state["epoch"].numpy())
    best = tf.train.latest_checkpoint(run_dir.best_checkpoints)
    if int(state["best_epoch"].numpy()) == epoch and not (best or "").endswith(f"-{epoch}"):
        publish_best(run_dir, last_path, epoch)
