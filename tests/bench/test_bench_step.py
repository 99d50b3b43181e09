"""bench/step.py --profile: the op timer's keys (op, dtypes, layout) and counts against ops written out,
the small ops' sum, and a profiled step whose rows add up to it. No timing is compared: timings live in
the benchmark."""
import collections

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from bench import step as bench_step
from minkgan import precision


def test_an_ops_dtypes_are_its_floating_inputs_and_its_layout_that_of_its_4d_input():
    x = torch.randn(2, 3, 4, 4)
    assert bench_step.floating_dtypes((x, x.bfloat16(), torch.arange(3), 2.0)) == "bfloat16+float32"
    assert bench_step.floating_dtypes((torch.arange(3),)) == "-"
    assert bench_step.layout_of((torch.randn(3), x)) == "contiguous"
    assert bench_step.layout_of(([x.contiguous(memory_format=torch.channels_last)],)) == "channels_last"
    assert bench_step.layout_of((torch.randn(1, 3, 1, 1).contiguous(memory_format=torch.channels_last),)) == "contiguous"
    assert bench_step.layout_of((torch.randn(3, 3),)) == "-"


def test_the_timer_counts_forward_and_backward_ops_with_their_dtypes_and_layouts():
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    x = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    with bench_step._OpTimer(torch.device("cpu")) as timer:
        for _ in range(2):
            F.conv2d(x, w).sum().backward()
        x.bfloat16()
    keys = set(timer.calls)
    assert timer.calls[("convolution", "float32", "channels_last")] == 2
    backward = {k: n for k, n in timer.calls.items() if k[0] == "convolution_backward"}
    assert sum(backward.values()) == 2  # autograd's ops are seen too (keyed by grad_output: an expanded one)
    assert timer.calls[("_to_copy", "float32", "channels_last")] == 1
    assert all(timer.ms[k] >= 0 for k in keys) and set(timer.ms) == keys


def test_ops_under_half_a_percent_of_the_step_are_summed_as_other():
    timer = bench_step._OpTimer(torch.device("cpu"))
    timer.ms = collections.Counter({("a", "float32", "-"): 994.0, ("b", "float32", "-"): 5.0, ("c", "-", "-"): 1.0})
    timer.calls = collections.Counter({("a", "float32", "-"): 4, ("b", "float32", "-"): 2, ("c", "-", "-"): 6})
    rows = bench_step.op_rows(timer, steps=2)
    assert [(r["op"], r["calls"], r["ms"], r["share"]) for r in rows] == [
        ("a", 2.0, 497.0, 0.994), ("b", 1.0, 2.5, 0.005), ("(other)", 3.0, 0.5, 0.001)]
    assert {r["step_ms"] for r in rows} == {500.0}


def test_a_profiled_step_adds_up_and_shows_bfloat16s_convolutions():
    rows = bench_step.profile_rows(torch.device("cpu"), "pytorchgan", ["plain", "bfloat16"], steps=1)
    for variant in ("plain", "bfloat16"):
        v = [r for r in rows if r["variant"] == variant]
        assert sum(r["ms"] for r in v) == pytest.approx(v[0]["step_ms"])
        assert sum(r["share"] for r in v) == pytest.approx(1.0)
        ops = {(r["op"], r["dtypes"]) for r in v}
        assert ("convolution_backward", "float32" if variant == "plain" else "bfloat16") in ops
    assert {r["dtypes"] for r in rows if r["variant"] == "plain"} <= {"float32", "-"}
    assert {r["steps"] for r in rows} == {1} and rows[0]["device"].endswith("threads")


def test_rows_of_two_cpus_of_one_name_but_other_bfloat16_hardware_both_stay(tmp_path):
    """KVM names a Zen 3 and a Zen 4 EPYC "AMD EPYC": a run on one must not replace the other's rows."""
    from minkgan.utils import merge_csv
    path = str(tmp_path / "bench_step.csv")
    row = {"device": "AMD EPYC x2 threads", "arch": "dcgan", "variant": "plain", "ms": 359.0}
    pd.DataFrame([{**row, "bf16_hardware": "AVX512-BF16"}]).to_csv(path, index=False)
    merge_csv(path, pd.DataFrame([{**row, "bf16_hardware": "none", "ms": 450.0}]), bench_step.CSV_KEY,
              added=precision.ADDED_KEY)
    merged = merge_csv(path, pd.DataFrame([{**row, "bf16_hardware": "none", "ms": 440.0}]), bench_step.CSV_KEY,
                       added=precision.ADDED_KEY)
    assert sorted(zip(merged["bf16_hardware"], merged["ms"])) == [("AVX512-BF16", 359.0), ("none", 440.0)]


def test_a_bench_csv_written_before_the_hardware_column_keeps_its_rows(tmp_path):
    from minkgan.utils import check_merge_target, merge_csv
    path = str(tmp_path / "bench_step.csv")
    pd.DataFrame([{"device": "Intel x2 threads", "arch": "dcgan", "variant": "plain", "ms": 693.0}]).to_csv(path, index=False)
    check_merge_target(path, bench_step.CSV_KEY, "--csv", added=precision.ADDED_KEY)
    new = {"device": "Intel x2 threads", "arch": "dcgan", "variant": "plain", "ms": 456.0, "bf16_hardware": "AMX"}
    merged = merge_csv(path, pd.DataFrame([new]), bench_step.CSV_KEY, added=precision.ADDED_KEY)
    assert sorted(merged["ms"]) == [456.0, 693.0]
