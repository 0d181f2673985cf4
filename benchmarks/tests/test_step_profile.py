"""The step profile: ops land in the right rows, oneDNN's log is summed per step, and a real run
of a tiny budget gives a table whose rows add up."""

import json
import subprocess
import sys

from benchmarks.tests.conftest import DATA_DIR, REPO


def test_rewritten_kernels_and_name_scopes_land_in_their_rows():
    from benchmarks.step_profile import group

    assert group("gradient_tape/e_1/conv2d_6_1/convolution/Conv2DBackpropFilter",
                 "_MklNativeConv2DBackpropFilter") == "Conv2DBackpropFilter"
    assert group("g_d_1/conv2d_transpose_1_2/conv_transpose",
                 "_MklNativeConv2DBackpropInput") == "Conv2DBackpropInput"
    assert group("e_1/conv2d_5_1/convolution", "_MklNativeConv2D") == "Conv2D"
    assert group("gradient_tape/g_e_1/batch_normalization_1/moments/mul_3", "Mul") == "batch norm"
    assert group("adam_1/Sub_35", "Sub") == "optimizer"
    assert group("g_d_1/Cast_1", "Cast") == "Cast"
    assert group("gradient_tape/g_e_1/leaky_re_lu_1/LeakyRelu/LeakyReluGrad",
                 "LeakyReluGrad") == "other"


def test_onednn_exec_lines_are_summed_per_step_and_other_lines_ignored():
    from benchmarks.step_profile import onednn_rows

    conv = ("onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core_amx,"
            "forward_training,src:bf16::blocked:acdb::f0,attr-scratchpad:user,"
            "alg:convolution_direct,mb64_ic1oc64,{}")
    lines = [conv.format(1.5), conv.format(2.5),
             "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:bf16,,,64x1x4x4,0.5",
             "onednn_verbose,v1,primitive,create:cache_miss,cpu,reorder,jit:uni,undef,src,,,x,9.0",
             "onednn_verbose,v1,info,cpu,isa:Intel AVX-512"]
    rows = onednn_rows(lines, steps=2)
    assert rows == {("convolution", "brg_conv_fwd:avx512_core_amx", "forward_training"): [1.0, 2.0],
                    ("reorder", "jit:uni", "undef"): [0.5, 0.25]}


def test_a_tiny_run_profiles_every_kernel_and_its_rows_add_up(tmp_path):
    out = subprocess.run([sys.executable, "-m", "benchmarks.step_profile", "--models=ganomaly",
                          "--profile=cpu", "--precisions=float32", "--steps=2", "--rounds=1",
                          "--ceiling_windows=1", "--ceiling_steps=1",
                          f"--data_dir={DATA_DIR}", f"--results_dir={tmp_path}"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    row = json.loads((tmp_path / "step_profile.json").read_text())["rows"][0]
    for kernel in ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"):
        assert row["ms"][kernel] > 0 and row["flops_per_step"][kernel] > 0
    assert row["ms"]["batch norm"] > 0 and row["ms"]["optimizer"] > 0
    assert {r[0] for r in row["onednn"]} >= {"convolution", "reorder"}
    md = (tmp_path / "step_profile.md").read_text()
    all_ops = next(line for line in md.splitlines() if line.startswith("| all ops |"))
    assert all_ops.split("|")[2].strip() == f"{sum(row['ms'].values()):.1f}"


def test_the_sentence_names_the_largest_bfloat16_group_and_its_kernel_alone():
    from benchmarks.step_profile import GROUPS, holds_back

    def row(img_s, ms, flops, alone):
        return {"batch_size": 64, "train_img_s": img_s, "ms": {**dict.fromkeys(GROUPS, 1.0), **ms},
                "flops_per_step": {**dict.fromkeys(GROUPS, 0), **flops},
                "alone_gflops": {"conv_filter_grad_gflops": alone}}
    f32 = row(100, {"Conv2DBackpropFilter": 60.0}, {"Conv2DBackpropFilter": 6e9}, 150)
    bf16 = row(140, {"Conv2DBackpropFilter": 50.0}, {"Conv2DBackpropFilter": 6e9}, 240)
    # bf16 op time: 50 + 7 other groups at 1 ms = 57; 6 GFLOP in 50 ms = 120 GFLOP/s of 240
    assert holds_back(f32, bf16) == (
        "bfloat16 trains at 1.40x float32's img/s. Largest share of its op time: "
        "Conv2DBackpropFilter, 88 %, 1.20x its float32 speed (the kernel alone: 1.60x; "
        "in the step it reaches 50 % of its alone GFLOP/s).")
