"""The speed report's markdown: one row per model x profile x precision, each rated against the
ceiling of its own dtype, the bfloat16-beside-float32 table and epoch estimates."""

import statistics


def _fmt(v, digits=3):
    if v is None:
        return "—"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _ceiling_line(ceiling):
    conv = "x".join(str(v) for v in ceiling["conv_shape"][:4]) + \
        f" -> {ceiling['conv_shape'][-1]} channels"
    return (f"Machine ceiling in {ceiling.get('dtype', 'float32')} (this run, median of windows): "
            f"matmul {ceiling['matmul_size']}^2 **{_fmt(ceiling['matmul_gflops'])} GFLOP/s**; "
            f"Conv2D 4x4 stride 2 'same' {conv}: forward **{_fmt(ceiling['conv_gflops'])}**, "
            f"input gradient (= Conv2DTranspose) {_fmt(ceiling.get('conv_input_grad_gflops'))}, "
            f"filter gradient {_fmt(ceiling.get('conv_filter_grad_gflops'))} GFLOP/s.")


COMPUTE_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
KERNEL_CEILINGS = {"Conv2D": "conv_gflops", "Conv2DBackpropInput": "conv_input_grad_gflops",
                   "Conv2DBackpropFilter": "conv_filter_grad_gflops", "MatMul": "matmul_gflops"}


def speedup_bound(flops_by_type, base, fast):
    """The train-step speed-up the machine's kernels allow: each op type's FLOPs sped up by the
    ratio of its ceiling kernel in the two dtypes (other ops: 1x), i.e. the step's time if every
    kernel ran as fast, relative to itself, as the ceiling's does."""
    ratios = {t: fast[k] / base[k] for t, k in KERNEL_CEILINGS.items() if k in fast and k in base}
    total = sum(flops_by_type.values())
    return total / sum(f / ratios.get(t, 1.0) for t, f in flops_by_type.items())


def _ratio(base, fast, key):
    """fast/base for `key` (train_img_s, score_img_s): with several rounds, the median of the
    same-round ratios and their range, steadier than the ratio of two medians."""
    a, b = base.get(f"{key}_rounds", []), fast.get(f"{key}_rounds", [])
    if len(a) > 1 and len(a) == len(b):
        ratios = sorted(y / x for x, y in zip(a, b))
        return (f"**{statistics.median(ratios):.2f}**, {ratios[0]:.2f}–{ratios[-1]:.2f} "
                f"over {len(ratios)} rounds")
    return f"**{fast[key] / base[key]:.2f}**"


def _precision_table(rows, ceilings=()):
    """bfloat16 beside float32 for every model/profile timed in both, each against its own
    ceiling, with the speed-up the kernels allow (speedup_bound)."""
    by_dtype = {c.get("dtype", "float32"): c for c in ceilings}
    pairs = {}
    for r in rows:
        pairs.setdefault((r["model"], r["profile"]), {})[r.get("precision", "float32")] = r
    pairs = {k: v for k, v in pairs.items() if len(v) > 1 and "float32" in v}
    if not pairs:
        return []
    lines = ["", "### bfloat16 beside float32", "",
             "| model | profile | train img/s f32 → bf16 (×) | train-step bound (×) | "
             "of own conv ceiling f32 / bf16 | "
             "SavedModel score img/s f32 → bf16 (×) | score of own conv ceiling f32 / bf16 |",
             "|---|---|---|---|---|---|---|"]
    for (model, profile), by in pairs.items():
        f32, other = by["float32"], [r for p, r in by.items() if p != "float32"][0]

        def pct(r, key):
            return f"{100 * r[key]:.0f}%" if key in r else "—"

        fast = by_dtype.get(COMPUTE_DTYPE.get(other.get("precision"), ""))
        bound = (f"{speedup_bound(f32['flops_by_type'], by_dtype['float32'], fast):.2f}"
                 if fast and "float32" in by_dtype and f32.get("flops_by_type") else "—")
        lines.append(
            f"| {model} | {profile} | {_fmt(f32['train_img_s'])} → {_fmt(other['train_img_s'])} "
            f"({_ratio(f32, other, 'train_img_s')}) | {bound} | "
            f"{pct(f32, 'of_conv')} / "
            f"{pct(other, 'of_conv')} | {_fmt(f32['score_img_s'])} → "
            f"{_fmt(other['score_img_s'])} ({_ratio(f32, other, 'score_img_s')}) | "
            f"{pct(f32, 'score_of_conv')} / {pct(other, 'score_of_conv')} |")
    rounds = _round_count(rows)
    lines += ["", ("Rows of both precisions ran one after the other in the same process"
                   + (f", in {rounds} rounds with the precisions' order alternating; ratios are "
                      "the median (and range) of the same-round ratios" if rounds > 1 else "")
                   + "; each is "
              "rated against the ceiling (matmul, conv) measured in its own dtype right after it. "
              "Train-step bound: the speed-up this machine's kernels allow, each op type's FLOPs "
              "(float32 row) sped up by its ceiling kernel's bfloat16/float32 ratio at the start of "
              "the run (conv forward, input gradient, filter gradient, matmul; other ops 1x).")]
    return lines


def _round_count(rows):
    """How many rounds of the grid the rows were measured in (0 for a report before --rounds)."""
    return max((len(r.get("train_img_s_rounds", ())) for r in rows), default=0)


def _fanogan_table(rows):
    """f-AnoGAN's one-pass score beside AnoGAN's latent search (issue 18), same run, per
    precision: against every AnoGAN row (the `cpu` profile's Γ and the paper's Γ = 500)."""
    fast = [r for r in rows if r["model"] == "fanogan" and r.get("score_img_s")]
    slow = [r for r in rows if r["model"] == "anogan" and r.get("score_img_s")]
    if not fast or not slow:
        return []
    lines = ["", "### f-AnoGAN's score beside AnoGAN's search (SavedModel img/s, this run)", "",
             "| precision | f-AnoGAN profile | f-AnoGAN img/s | AnoGAN profile | AnoGAN img/s | "
             "f-AnoGAN speed-up |", "|---|---|---|---|---|---|"]
    for f in fast:
        for a in slow:
            if a.get("precision", "float32") != f.get("precision", "float32"):
                continue
            lines.append(f"| {f.get('precision', 'float32')} | {f['profile']} | "
                         f"{_fmt(f['score_img_s'])} | {a['profile']} ({a.get('score_note', '')}) | "
                         f"{_fmt(a['score_img_s'])} | **{f['score_img_s'] / a['score_img_s']:,.0f}×** |")
    return lines


def render(rows, ceiling, meta=None):
    """Markdown section: the rows of measure() and the ceiling(s) of measure_ceiling() (one
    dict, or a list with one per precision)."""
    meta = meta or {}
    ceilings = ceiling if isinstance(ceiling, list) else [ceiling]
    lines = ["## Speed report", ""]
    if meta.get("command"):
        lines += [f"Command: `{meta['command']}`", ""]
    if meta.get("load"):
        lines += [f"Load: `{meta['load']}` (before) / `{meta.get('load_after', '?')}` (after); "
                  f"{meta.get('machine', '')}", ""]
    for c in ceilings:
        lines += [_ceiling_line(c), ""]
    lines += [
        "| model | profile | precision | filters | train img/s | MFLOP/img (train step) | GFLOP/s | "
        "of matmul | of conv | score img/s (SavedModel) | score MFLOP/img | score GFLOP/s (of conv) | "
        "outside steps (fit / val / ckpt / log) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        outside = (f"{100 * r['outside_share']:.1f}% ("
                   f"{100 * r['outside_fit_overhead_share']:.1f} / "
                   f"{100 * r['outside_validation_share']:.1f} / "
                   f"{100 * r['outside_checkpoints_share']:.1f} / "
                   f"{100 * r['outside_logging_share']:.2f})") if "outside_share" in r else "—"
        score = _fmt(r.get("score_img_s")) + (f" ({r['score_note']})" if r.get("score_note") else "")
        score_flops = (f"{_fmt(r['score_flops_per_img'] / 1e6)} | {_fmt(r['score_gflops'])} "
                       f"({100 * r.get('score_of_conv', 0):.0f}%)" if "score_gflops" in r
                       else "— (search loop) | —")
        lines.append(
            f"| {r['model']} | {r['profile']} | {r.get('precision', 'float32')} | "
            f"{'/'.join(map(str, r['filters']))} | "
            f"{_fmt(r['train_img_s'])} | {_fmt(r['flops_per_img'] / 1e6)} | {_fmt(r['gflops'])} | "
            f"{100 * r.get('of_matmul', 0):.0f}% | {100 * r.get('of_conv', 0):.0f}% | {score} | "
            f"{score_flops} | {outside} |")
    rounds = _round_count(rows)
    lines += ["", "train img/s: tf.function(model.train_step) on real MNIST batches of "
              f"{rows[0]['batch_size'] if rows else '?'}, after warm-up, median of windows. "
              + (f"Every row was measured in {rounds} rounds of the whole grid: its training "
                 "columns are from its median-train round, its scoring columns from its "
                 "median-score round (the lower median for an even count). " if rounds > 1 else "")
              + "FLOPs: one train step's concrete-function graph (fixed batch shape), TF's registered "
              "float-op statistics (those tf.compat.v1.profiler's float_operation() sums: Conv2D, "
              "Conv2DBackpropInput, Conv2DBackpropFilter, MatMul, element-wise ops) over the ops "
              "the step's outputs and variable updates depend on (the profiler's whole-graph "
              "total also counts gradient ops TF prunes at run time), / batch. GFLOP/s ratios: "
              "to a matmul and a conv measured again right after the row (load drifts). Score MFLOP/img: "
              "model.score's graph at batch 256, counted the same way (not for a latent search, whose "
              "loop the count cannot see); score GFLOP/s uses the SavedModel's img/s. Outside steps: share of an "
              "estimated full pooled-MNIST epoch (class 0 split) spent outside raw train steps: "
              "keras fit's extra per-batch cost (tf.data pipeline, callbacks, logs), validation "
              "scoring (training.score_images, extrapolated from a sample), the best+last "
              "checkpoint saves and the TensorBoard scalars."]
    lines += _precision_table(rows, ceilings) + _fanogan_table(rows)
    if rows:
        lines += ["", "| model | profile | precision | epoch (est.) | raw step | "
                  "fit step (+ per fit call) | conv+matmul share of FLOPs | "
                  "whole-graph MFLOP/img (unpruned) | fit jit_compile |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            if "epoch_s" not in r:
                continue
            lines.append(f"| {r['model']} | {r['profile']} | {r.get('precision', 'float32')} | "
                         f"{r['epoch_s']:.0f} s "
                         f"({r['steps_per_epoch']} steps) | {1e3 * r['raw_step_s']:.0f} ms | "
                         f"{1e3 * r['fit_step_s']:.0f} ms (+{r['fit_fixed_s']:.1f} s) | "
                         f"{100 * r['conv_matmul_flop_share']:.1f}% | "
                         f"{_fmt(r['graph_flops_per_img'] / 1e6)} | {r['fit_jit_compile']} |")
    return "\n".join(lines) + "\n"
