"""Where a compiled train step spends its time, by kernel, float32 beside bfloat16 (issue 39).

TF's profiler times every op of a few steps; oneDNN's verbose log (ONEDNN_VERBOSE=1, set for a
child process before TensorFlow loads) names the implementation and ISA each convolution ran on
(AMX or not) and the reorders around them. Each convolution kernel's GFLOP/s inside the step is
set beside what the same kernel reaches alone in the same child (ceiling.py), so a bfloat16 step
that stays short of its bound shows which op holds it back.

    python -m benchmarks.step_profile --models=ganomaly,egbad --profile=paper \
        --precisions=float32,mixed_bfloat16 --data_dir=../shared/data [--pause=PID,...]

Ops that overlap share the cores, so a kernel's GFLOP/s inside the step is a lower bound.
"""

import glob
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial

from absl import flags

from anomaly_toolbox import cli
from anomaly_toolbox.run.provenance import git_commit
from benchmarks import RESULTS
from benchmarks.grid_flags import refuse_repeated_flags
from benchmarks.report import STEP_PROFILE_REPORT, write_section
from benchmarks.speed_tables import COMPUTE_DTYPE, KERNEL_CEILINGS
from benchmarks.timing import load_average, paused, vector_set

FLAGS = flags.FLAGS
START, END, RESULT = "@@profile-start", "@@profile-end", "@@result "
PRECISIONS = ("float32", "mixed_bfloat16")
KERNELS = ("Conv2DBackpropFilter", "Conv2DBackpropInput", "Conv2D", "MatMul")  # match order
GROUPS = KERNELS + ("batch norm", "optimizer", "Cast", "other")


def define_flags():
    flags.DEFINE_list("models", ["ganomaly", "egbad"], "Models to profile.")
    flags.DEFINE_string("profile", "paper", "Budget profile (experiments/*_mnist_<profile>.json).")
    flags.DEFINE_list("precisions", list(PRECISIONS), "float32 and/or mixed_bfloat16.")
    flags.DEFINE_integer("steps", 10, "Profiled train steps (after 3 warm-up steps).")
    flags.DEFINE_integer("rounds", 3, "Rounds; each profiles every model and precision once, "
                         "alternating the order. A table shows its median round by img/s.")
    flags.DEFINE_integer("batch_size", 64, "Images per step.")
    flags.DEFINE_integer("ceiling_windows", 5, "Timed windows per kernel alone (median taken).")
    flags.DEFINE_integer("ceiling_steps", 5, "Calls per window of a kernel alone.")
    flags.DEFINE_list("pause", [], "PIDs whose process groups are stopped while profiling.")
    flags.DEFINE_string("data_dir", None, "Folder holding mnist/*-ubyte.gz.")
    flags.DEFINE_string("results_dir", RESULTS, "Where step_profile.md and .json go.")
    flags.DEFINE_bool("table_only", False, "Only re-render step_profile.md from its .json.")
    flags.DEFINE_string("child", None, "Internal: 'model,precision' to profile in this process.")


def group(op_name, op_type):
    """The row an op's time and FLOPs go to: its kernel (oneDNN's rewrites keep the name inside
    the type, e.g. _MklNativeConv2DBackpropFilter), else what the op is part of."""
    for kernel in KERNELS:
        if kernel in op_type:
            return kernel
    if "batch_normalization" in op_name:
        return "batch norm"
    if op_name.split("/")[0].startswith(("adam", "optimizer")):
        return "optimizer"
    return "Cast" if op_type == "Cast" else "other"


def op_times(xspace_path, steps):
    """ms per step of each group, summed over the executor's threads, from a profiler trace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(xspace_path, "rb") as f:
        space.ParseFromString(f.read())
    ms = dict.fromkeys(GROUPS, 0.0)
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                label = plane.event_metadata[event.metadata_id].name
                if ":" in label and "::" not in label and " " not in label:  # "op name:op type"
                    name, _, op_type = label.rpartition(":")
                    ms[group(name, op_type)] += event.duration_ps / 1e9 / steps
    return ms


def onednn_rows(lines, steps):
    """{(primitive, implementation, propagation): [calls, ms]} per step from verbose exec lines."""
    rows = {}
    for line in lines:
        parts = line.split(",")
        if len(parts) < 9 or parts[:4] != ["onednn_verbose", "v1", "primitive", "exec"]:
            continue
        key = (parts[5], parts[6], parts[7])
        row = rows.setdefault(key, [0.0, 0.0])
        row[0] += 1 / steps
        row[1] += float(parts[-1]) / steps
    return rows


def profile_here(model_name, precision, profile, steps, batch_size, data_dir, ceiling):
    """In the child: img/s, FLOPs and op times of the step, and the kernels alone."""
    import tensorflow as tf

    from anomaly_toolbox.models.precision import policy
    from benchmarks.ceiling import measure_ceiling
    from benchmarks.flops import count_flops
    from benchmarks.timing import sync, timed_windows
    from benchmarks.workload import build, compiled_step, config, pooled_splits, real_batches

    cfg = config(model_name, profile)
    with policy(precision):
        model = build(model_name, cfg["model"])
    batches = real_batches(pooled_splits(data_dir).x_train, batch_size)
    step = compiled_step(model)
    for b in batches[:3]:
        sync(step(b))
    seconds = timed_windows(lambda i: step(batches[i % len(batches)]), 3, steps)
    flops = dict.fromkeys(GROUPS, 0)
    concrete = step.get_concrete_function(batches[0])
    for name, value in count_flops(concrete, by_op=True)[1].items():
        flops[group(name, concrete.graph.get_operation_by_name(name).type)] += value
    with tempfile.TemporaryDirectory(prefix="step-profile-") as logdir:
        print(START, flush=True)
        tf.profiler.experimental.start(logdir)
        for i in range(steps):
            out = step(batches[i % len(batches)])
        sync(out)
        tf.profiler.experimental.stop()
        print(END, flush=True)
        ms = op_times(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0],
                      steps)
    alone = measure_ceiling(*ceiling, kinds=("matmul", "conv", "conv_input_grad", "conv_filter_grad"),
                            dtype=COMPUTE_DTYPE[precision])
    return {"model": model_name, "profile": profile, "precision": precision,
            "batch_size": batch_size,
            "train_img_s": batch_size * steps / statistics.median(seconds), "ms": ms,
            "flops_per_step": flops, "alone_gflops": alone}


def run_child(model_name, precision):
    cmd = [sys.executable, "-m", "benchmarks.step_profile", f"--child={model_name},{precision}",
           f"--profile={FLAGS.profile}", f"--steps={FLAGS.steps}",
           f"--batch_size={FLAGS.batch_size}", f"--data_dir={FLAGS.data_dir}",
           f"--ceiling_windows={FLAGS.ceiling_windows}", f"--ceiling_steps={FLAGS.ceiling_steps}"]
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    inside = lines[lines.index(START) + 1:lines.index(END)]
    row = json.loads(next(x for x in lines if x.startswith(RESULT))[len(RESULT):])
    row["onednn"] = [[*k, *v] for k, v in sorted(onednn_rows(inside, FLAGS.steps).items())]
    row["isa"] = next((x.split(",isa:", 1)[1] for x in lines if ",info,cpu,isa:" in x), "unknown")
    return row


def _gflops(row, kernel):
    ms = row["ms"][kernel]
    return row["flops_per_step"][kernel] / ms / 1e6 if ms else 0.0


def holds_back(f32, bf16):
    """The sentence under a model's table: the op group taking the largest share of the
    bfloat16 step, its speed-up in the step and, for a kernel, the same kernel's alone."""
    total = sum(bf16["ms"].values())
    worst = max(GROUPS, key=lambda g: bf16["ms"][g])
    gain = f32["ms"][worst] / bf16["ms"][worst]
    text = (f"bfloat16 trains at {bf16['train_img_s'] / f32['train_img_s']:.2f}x float32's "
            f"img/s. Largest share of its op time: {worst}, "
            f"{100 * bf16['ms'][worst] / total:.0f} %, {gain:.2f}x its float32 speed")
    key = KERNEL_CEILINGS.get(worst)
    if key:
        alone = bf16["alone_gflops"][key]
        text += (f" (the kernel alone: {alone / f32['alone_gflops'][key]:.2f}x; in the step it "
                 f"reaches {100 * _gflops(bf16, worst) / alone:.0f} % of its alone GFLOP/s)")
    return text + "."


def render(rows, meta):
    lines = ["## Where a train step's time goes (float32 beside bfloat16)", "",
             f"`{meta['command']}` at commit {meta.get('commit')} — {meta['machine']}, vector "
             f"set: {meta['vector_set']}; "
             f"{meta['load']}. Op time is summed over TF's executor threads (ops that overlap "
             "share the cores, so a kernel's GFLOP/s in the step is a lower bound); \"alone\" is "
             "the same kernel on the paper models' middle convolution (or a 2048² matmul) in "
             "the same process. Each table is a precision's median round (by img/s); oneDNN "
             "rows come from its verbose log of the same steps.", ""]
    rounds, by_model = {}, {}
    for r in rows:
        rounds.setdefault((r["model"], r["profile"], r["precision"]), []).append(r)
    for (model, profile, precision), runs in rounds.items():
        runs.sort(key=lambda r: r["train_img_s"])
        by_model.setdefault((model, profile), {})[precision] = {
            **runs[(len(runs) - 1) // 2],
            "spread": [runs[0]["train_img_s"], statistics.median(r["train_img_s"] for r in runs),
                       runs[-1]["train_img_s"]]}
    for (model, profile), by in by_model.items():
        precisions = [p for p in PRECISIONS if p in by]
        head = " | ".join(f"{p} ms/step | GFLOP/s in step (alone)" for p in precisions)
        lines += [f"### {model}, `{profile}`: train img/s min / median / max over rounds: "
                  + ", ".join(f"{p} " + " / ".join(f"{v:,.0f}" for v in by[p]["spread"])
                              for p in precisions) + f" (oneDNN ISA: {by[precisions[0]]['isa']})",
                  "",
            f"| op group | {head} |", "|---|" + "---|---|" * len(precisions)]
        for g in GROUPS:
            if not any(by[p]["ms"][g] for p in precisions):
                continue
            cols = []
            for p in precisions:
                r = by[p]
                key = KERNEL_CEILINGS.get(g)
                rate = (f"{_gflops(r, g):,.0f} ({r['alone_gflops'][key]:,.0f})"
                        if key and r["flops_per_step"][g] else "—")
                cols += [f"{r['ms'][g]:.1f}", rate]
            lines.append(f"| {g} | " + " | ".join(cols) + " |")
        lines.append("| all ops | " + " | ".join(
            f"{sum(by[p]['ms'].values()):.1f} | —" for p in precisions) + " |")
        step_ms = [1e3 * by[p]["batch_size"] / by[p]["train_img_s"] for p in precisions]
        lines.append("| step, wall | " + " | ".join(f"{ms:.1f} | —" for ms in step_ms) + " |")
        if len(precisions) == 2:
            lines += ["", holds_back(by["float32"], by["mixed_bfloat16"])]
        lines += ["", "| precision | oneDNN primitive | implementation | pass | calls/step | "
                  "ms/step |", "|---|---|---|---|---|---|"]
        for p in precisions:
            for prim, impl, prop, calls, ms in by[p]["onednn"]:
                lines.append(f"| {p} | {prim} | {impl} | {prop} | {calls:.0f} | {ms:.1f} |")
        lines.append("")
    return lines


def body():
    from anomaly_toolbox.errors import UsageError

    for p in FLAGS.precisions:
        if p not in PRECISIONS:
            raise UsageError("precisions", ",".join(FLAGS.precisions), f"each one of {PRECISIONS}")
    for name in ("steps", "rounds", "ceiling_windows", "ceiling_steps"):
        if FLAGS[name].value <= 0:
            raise UsageError(name, FLAGS[name].value, "a positive integer")
    if FLAGS.child:
        model_name, precision = FLAGS.child.split(",")
        row = profile_here(model_name, precision, FLAGS.profile, FLAGS.steps, FLAGS.batch_size,
                           FLAGS.data_dir, (FLAGS.ceiling_windows, FLAGS.ceiling_steps))
        print(RESULT + json.dumps(row), flush=True)
        return
    if FLAGS.table_only:
        with open(os.path.join(FLAGS.results_dir, "step_profile.json")) as f:
            kept = json.load(f)
        write_section(FLAGS.results_dir, STEP_PROFILE_REPORT,
                      "\n".join(render(kept.pop("rows"), kept)))
        return
    rows = []
    with paused(FLAGS.pause):
        load = load_average()
        for r in range(FLAGS.rounds):
            for model_name in FLAGS.models:
                for precision in FLAGS.precisions[::-1] if r % 2 else FLAGS.precisions:
                    t0 = time.time()
                    rows.append({**run_child(model_name, precision), "round": r})
                    print(f"round {r} {model_name} {precision}: {rows[-1]['train_img_s']:.0f} "
                          f"img/s ({time.time() - t0:.0f} s)", flush=True)
    meta = {"command": "python -m benchmarks.step_profile --models=" + ",".join(FLAGS.models)
                       + f" --profile={FLAGS.profile} --precisions=" + ",".join(FLAGS.precisions)
                       + f" --steps={FLAGS.steps} --rounds={FLAGS.rounds}"
                       + " --data_dir=../shared/data",
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus", "commit": git_commit(),
            "vector_set": vector_set(), "load": load}
    text = "\n".join(render(rows, meta))
    write_section(FLAGS.results_dir, STEP_PROFILE_REPORT, text, {"rows": rows, **meta})
    print(text)


if __name__ == "__main__":
    cli.main(define_flags, body, partial(refuse_repeated_flags, "models", "precisions"))
