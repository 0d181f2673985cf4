"""What a train step needs to be right under tf.distribute (mirrored or multi-worker).

Keras' optimizers SUM gradients over replicas, so each replica scales its (batch-mean) loss by
its share of the global batch; the sum is then the gradient of the global-batch mean, as on one
device. Noise is drawn once for the global batch from the same stateless seed on every replica,
and each replica keeps its own rows: independent noise per replica, and the very noise one
device would draw. On one replica both are no-ops, so single-device numbers do not change.
"""

import tensorflow as tf


def _context():
    ctx = tf.distribute.get_replica_context()
    return ctx if ctx is not None and ctx.num_replicas_in_sync > 1 else None


def replicated():
    """True while building under a strategy with several replicas (batch norm then syncs)."""
    return tf.distribute.get_strategy().num_replicas_in_sync > 1


def loss_share(x):
    """This replica's share of the global batch (1.0, a Python float, on one replica)."""
    ctx = _context()
    if ctx is None:
        return 1.0
    local = tf.cast(tf.shape(x)[0], tf.float32)
    return local / ctx.all_reduce(tf.distribute.ReduceOp.SUM, local)


def stateless_normal(shape, seed):
    """N(0, 1) rows for this replica's part of a global draw with `seed` (shape[0] = local batch)."""
    ctx = _context()
    if ctx is None:
        return tf.random.stateless_normal(shape, seed=seed)
    local = tf.reshape(tf.cast(shape[0], tf.int32), [1])
    sizes = ctx.all_gather(local, axis=0)
    start = tf.reduce_sum(sizes[:ctx.replica_id_in_sync_group])
    full = tf.random.stateless_normal([tf.reduce_sum(sizes)] + list(shape[1:]), seed=seed)
    return full[start:start + local[0]]


def reported(losses):
    """The train step's logged values. Keras (3.15) averages them over workers along axis 0,
    which fails for scalars under MultiWorkerMirroredStrategy: give them that axis there."""
    if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
        return {k: tf.reshape(v, [1]) for k, v in losses.items()}
    return losses
