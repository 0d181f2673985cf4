"""Float operations of one execution of a tf.function, counted from its graph with TensorFlow's
own registered op statistics, so that a measured img/s can be turned into GFLOP/s and set
against the machine's ceiling. Only ops that run are counted: TF prunes the rest."""


def count_flops(concrete_fn, by_op=False):
    """(total, {op type: flops}, whole-graph total) of one execution of a concrete function's
    graph, from TF's registered "flops" op statistics (the ones tf.compat.v1.profiler sums;
    its whole-graph total is returned too, for comparison). by_op: keyed by op name instead."""
    import tensorflow as tf
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.profiler.internal import flops_registry  # noqa: F401 (registers)

    graph = concrete_fn.graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    graph_total = tf.compat.v1.profiler.profile(graph=graph, cmd="op",
                                                options=options).total_float_ops
    # The graph also holds gradient ops nothing uses (tf.GradientTape's Conv2D gradient builds
    # the input AND the filter gradient even when only one is needed, e.g. D's filter gradients
    # inside G's loss): TF prunes them when it runs the function, so count only the ops that
    # the outputs or a side effect (variable updates) depend on.
    live, todo = set(), [t.op for t in graph.outputs] + list(graph.control_outputs) + [
        op for op in graph.get_operations() if op._is_stateful and not op.outputs]
    while todo:
        op = todo.pop()
        if op.name in live:
            continue
        live.add(op.name)
        todo.extend(t.op for t in op.inputs)
        todo.extend(op.control_inputs)
    by_type = {}
    for op in graph.get_operations():
        if op.name not in live:
            continue
        try:
            value = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
        except ValueError:  # no shape or no statistics registered
            value = None
        if value:
            key = op.name if by_op else op.type
            by_type[key] = by_type.get(key, 0) + int(value)
    return int(sum(by_type.values())), by_type, int(graph_total)
