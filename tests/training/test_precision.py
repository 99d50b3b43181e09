"""train.py --precision (issue 36): the flag's plumbing into config.json, the run's folder name and
runs.csv, float32 unchanged to the bit, the refusal of a device without bfloat16, a bfloat16 run that
trains to the end, and the CPU's bfloat16 hardware as the benchmarks record it. No timing."""
import json
import os

import pandas as pd
import pytest
import torch

import ablate_p

from minkgan import collect
from minkgan import precision
from minkgan import training as train
from minkgan import settings
from minkgan import trainstep
from minkgan.utils import UserError, run_main

TOY = ["--dataset", "ring8", "--steps", "6", "--log-every", "2", "--sample-every", "100", "--ckpt-every", "3",
       "--fused", "off"]


def run(argv):
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: train.main(argv))
    return exit_info.value.code


def read(path):
    with open(path) as f:
        return json.load(f)


def cpuinfo(tmp_path, flags):
    path = tmp_path / f"cpuinfo-{len(flags)}"
    path.write_text(f"model name\t: Fake CPU\nflags\t\t: fpu sse2 {' '.join(flags)}\n")
    return str(path)


def test_the_bf16_hardware_is_read_from_the_cpu_flags(tmp_path):
    assert precision.bf16_hardware(cpuinfo(tmp_path, ["avx512_bf16", "amx_bf16", "amx_tile"])) == "AMX"
    assert precision.bf16_hardware(cpuinfo(tmp_path, ["avx512_bf16"])) == "AVX512-BF16"
    none = cpuinfo(tmp_path, [])
    assert precision.bf16_hardware(none) == "none" and precision.bf16_hardware(tmp_path / "missing") == "none"
    assert precision.cpu_row(none) == {"cpu": "Fake CPU", "bf16_hardware": "none"}
    assert "emulated" in precision.emulated_note(none) and precision.emulated_note(cpuinfo(tmp_path, ["amx_bf16"])) is None


def test_a_cpu_without_bf16_hardware_runs_bfloat16_with_one_warning_line(tmp_path, capsys):
    precision.check_precision("bfloat16", "cpu", "--precision", cpuinfo(tmp_path, []))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: --precision bfloat16") and "emulated" in err
    precision.check_precision("bfloat16", "cpu", "--precision", cpuinfo(tmp_path, ["amx_bf16"]))
    precision.check_precision("float32", "cpu")
    assert capsys.readouterr().err == ""


def test_a_gpu_without_bf16_is_refused_in_one_line_exit_2_with_nothing_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(settings, "resolve_device", lambda name: "cuda")
    monkeypatch.setattr(precision, "cuda_has_bf16", lambda device: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Old GPU")
    out = tmp_path / "run"
    assert run([*TOY, "--precision", "bfloat16", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --precision bfloat16: Old GPU has no native bfloat16")
    assert not out.exists() and os.listdir(tmp_path) == []
    with pytest.raises(UserError, match="--fid-precision bfloat16: Old GPU"):
        precision.check_precision("bfloat16", "cuda", "--fid-precision")


def test_the_flag_is_in_config_json_and_a_bfloat16_run_has_a_folder_of_its_own():
    parse = lambda *a: settings.resolve(settings.build_parser().parse_args(list(a)))  # noqa: E731
    cfg = parse("--dataset", "ring8")
    assert cfg["precision"] == "float32" and cfg["fid_precision"] == "float32"
    assert cfg["out"] == os.path.join("runs", "ring8", "minkowski-p4-seed0")  # as before the flag
    bf16 = parse("--dataset", "ring8", "--precision", "bfloat16", "--clip-params", "weights", "--clip", "0.01")
    assert bf16["out"] == os.path.join("runs", "ring8", "minkowski-p4-clip0.01-clipweights-bfloat16-seed0")
    assert "precision" in settings.RUN_DEFINING


def test_float32_is_bit_for_bit_the_run_without_the_flag(tmp_path):
    outs = [str(tmp_path / "default"), str(tmp_path / "float32")]
    assert run([*TOY, "--out", outs[0]]) == 0
    assert run([*TOY, "--precision", "float32", "--out", outs[1]]) == 0
    metrics = [pd.read_csv(os.path.join(o, "metrics.csv")).drop(columns="seconds") for o in outs]
    pd.testing.assert_frame_equal(*metrics, check_exact=True)
    ckpts = [torch.load(os.path.join(o, "checkpoints", "last.pt"), weights_only=True) for o in outs]
    for net in ("G", "D"):
        for name, tensor in ckpts[0][net].items():
            assert torch.equal(tensor, ckpts[1][net][name]), name
    assert read(os.path.join(outs[1], "config.json"))["precision"] == "float32"


def test_an_old_run_without_precision_resumes_as_float32_and_refuses_bfloat16(tmp_path, capsys):
    out = str(tmp_path / "old")
    assert run([*TOY, "--steps", "3", "--out", out]) == 0
    path = os.path.join(out, "config.json")
    cfg = read(path)
    del cfg["precision"], cfg["fid_precision"], cfg["config_version"]  # a config from before the flags
    with open(path, "w") as f:
        json.dump(cfg, f)
    capsys.readouterr()
    assert run([*TOY, "--steps", "3", "--precision", "bfloat16", "--out", out, "--resume"]) == 2
    assert "was trained with --precision float32, not bfloat16" in capsys.readouterr().err
    assert run([*TOY, "--out", out, "--resume"]) == 0
    assert read(os.path.join(out, "summary.json"))["step"] == 6


def test_a_bfloat16_run_on_tiny_images_trains_to_the_end_with_float32_state(tiny_images, tmp_path):
    out = str(tmp_path / "bf16")
    argv = ["--dataset", "folder", "--data-root", tiny_images, "--width", "4", "--batch-size", "8", "--steps", "3",
            "--log-every", "1", "--precision", "bfloat16", "--out", out]
    assert run(argv) == 0
    assert read(os.path.join(out, "summary.json"))["status"] == "completed"
    assert read(os.path.join(out, "config.json"))["precision"] == "bfloat16"
    metrics = pd.read_csv(os.path.join(out, "metrics.csv"))
    assert metrics["step"].tolist() == [1, 2, 3] and metrics.notna().all().all()
    ckpt = torch.load(os.path.join(out, "checkpoints", "last.pt"), weights_only=True)
    assert all(t.dtype == torch.float32 for net in ("G", "D") for t in ckpt[net].values() if t.is_floating_point())
    adam = [t for s in ckpt["opt_d"]["state"].values() for t in s.values() if t.is_floating_point() and t.dim()]
    assert adam and all(t.dtype == torch.float32 for t in adam)


def test_the_trainers_forward_gives_float32_from_bfloat16_autocast():
    cfg = settings.resolve(settings.build_parser().parse_args(["--dataset", "folder", "--width", "4", "--precision",
                                                         "bfloat16", "--fused", "off"]))
    trainer = trainstep.Trainer(cfg, torch.device("cpu"))
    z = torch.randn(4, cfg["z_dim"])
    fake = trainer.forward(trainer.G, z)
    logits = trainer.forward(trainer.D, fake)
    assert fake.dtype == logits.dtype == torch.float32
    with precision.autocast("bfloat16", "cpu"):
        assert trainer.D(fake).dtype == torch.bfloat16  # what the cast turns back into float32


def write_run(runs, name, cfg, steps=2):
    folder = runs / "ring8" / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"dataset": "ring8", "loss": "gan", "p": 4.0, "seed": 0,
                                                    "eval_n": 100, **cfg}))
    (folder / "summary.json").write_text(json.dumps({"status": "completed", "step": steps, "total_steps": steps,
                                                     "final_modes": 5 if cfg.get("precision") else 3}))


def test_runs_csv_keeps_the_precisions_apart_and_old_rows_keep_their_identity(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "gan-seed0", {})  # from before --precision: float32
    write_run(runs, "gan-bfloat16-seed0", {"precision": "bfloat16"})
    rows = collect.collect_rows(str(runs))
    cells = rows.set_index("run")["precision"]
    assert pd.isna(cells["ring8/gan-seed0"]) and cells["ring8/gan-bfloat16-seed0"] == "bfloat16"
    results = tmp_path / "results"
    results.mkdir()
    old = rows[rows["precision"].isna()].drop(columns="precision").assign(final_modes=1)
    old.to_csv(results / "runs.csv", index=False)  # a runs.csv from before the column
    merged = collect.merge_run_rows(rows, str(results))
    assert len(merged) == 2  # the float32 rerun replaced its old row, the bfloat16 run is another run
    float32 = merged[merged["precision"].isna()]
    assert float32["final_modes"].tolist() == [3] and merged["precision"].dropna().tolist() == ["bfloat16"]
    text = (results / "runs.csv").read_text().splitlines()
    assert text[0].split(",").count("precision") == 1 and ",,dcgan" not in text[1]
    groups = collect.aggregate(merged, collect.METRICS["toy"])
    assert sorted(groups["final_modes_mean"]) == [3, 5]  # two groups, never one mean
    assert collect.float32_runs(merged)["run"].tolist() == ["ring8/gan-seed0"]


def test_a_sweep_forwards_the_flag_and_names_its_runs_by_it():
    args, passthrough = ablate_p.parse(["--dataset", "ring8", "--losses", "gan", "--precision", "bfloat16"])
    (name, argv, _), = ablate_p.plan(args, passthrough)
    assert name == "ring8/gan-bfloat16-seed0" and argv[-2:] == ["--precision", "bfloat16"]
