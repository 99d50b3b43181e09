"""train.py end to end on tiny budgets: every loss and architecture, resume, divergence, bad input."""
import json
import os
import subprocess
import sys
import time
import types

import pandas as pd
import pytest
import torch

from minkgan import data
import losses
import models
from minkgan import rundir
from minkgan import training as train
from minkgan import precision
from minkgan import settings
from minkgan import trainstep
from minkgan import utils
from minkgan.utils import run_main

from layout import ROOT  # noqa: E402
TOY = ["--dataset", "ring8", "--log-every", "5", "--sample-every", "10", "--ckpt-every", "10"]


def run(argv):
    """train.py's command line in-process: (exit code, stderr is checked by the caller)."""
    with pytest.raises(SystemExit) as exit_info:
        run_main(lambda: train.main(argv))
    return exit_info.value.code


def summary(out):
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("loss", losses.LOSSES)
def test_every_loss_trains_on_ring8(loss, tmp_path):
    out = str(tmp_path / loss)
    assert run(["--loss", loss, "--steps", "20", "--out", out, *TOY]) == 0
    assert summary(out)["status"] == "completed" and summary(out)["step"] == 20
    metrics = pd.read_csv(os.path.join(out, "metrics.csv"))
    assert list(metrics.columns) == rundir.METRIC_COLUMNS
    assert metrics["step"].tolist() == [5, 10, 15, 20]
    assert metrics[["loss_d", "loss_g", "grad_norm_d", "grad_norm_g"]].notna().all().all()
    assert os.path.exists(os.path.join(out, "samples", "step0000020.png"))
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["loss"] == loss and config["torch"] == torch.__version__ and "backend" in config
    ckpt = torch.load(os.path.join(out, "checkpoints", "last.pt"), weights_only=True)
    assert ckpt["step"] == 20 and set(ckpt) >= {"G", "D", "opt_g", "opt_d", "rng"}


def test_loss_dependent_defaults(tmp_path):
    cfg = settings.resolve(settings.build_parser().parse_args(["--loss", "wgan-gp"]))
    assert (cfg["clip"], cfg["gp"], cfg["n_critic"], cfg["d_norm"]) == (0.0, 10.0, 5, "none")
    assert settings.resolve(settings.build_parser().parse_args(["--loss", "wgan", "--dataset", "ring8"]))["clip"] == 0.01
    assert settings.resolve(settings.build_parser().parse_args(["--dataset", "ring8"]))["clip"] == 0.0
    cfg = settings.resolve(settings.build_parser().parse_args([]))
    assert (cfg["loss"], cfg["p"], cfg["clip"], cfg["gp"], cfg["n_critic"]) == ("minkowski", 4.0, 0.01, 0.0, 1)
    assert (cfg["lr_d"], cfg["lr_g"], cfg["beta1"], cfg["beta2"], cfg["batch_size"], cfg["z_dim"], cfg["epochs"]) == \
        (2e-4, 2e-4, 0.5, 0.999, 64, 100, 200)
    assert cfg["out"] == os.path.join("runs", "cifar10", "minkowski-p4-seed0")
    assert cfg["d_norm"] == "batch"
    parse = lambda *a: settings.resolve(settings.build_parser().parse_args(list(a)))  # noqa: E731
    assert parse("--loss", "wgan", "--gp", "10")["d_norm"] == "none"  # any penalty: no BatchNorm in D
    assert parse("--loss", "gan", "--gp", "1", "--d-norm", "batch")["d_norm"] == "batch"  # unless asked for


@pytest.mark.parametrize("loss", losses.LOSSES)
def test_every_loss_trains_on_tiny_images(loss, tiny_images, tmp_path):
    out = str(tmp_path / loss)
    argv = ["--loss", loss, "--dataset", "folder", "--data-root", tiny_images, "--width", "4", "--batch-size", "8",
            "--steps", "3", "--n-critic", "2", "--log-every", "1", "--out", out]
    assert run(argv) == 0
    metrics = pd.read_csv(os.path.join(out, "metrics.csv"))
    assert metrics["step"].tolist() == [1, 2, 3] and metrics.notna().all().all()


def test_embedded_2d_benchmarks_follow_the_protocol():
    centres, std = data.toy_mixture("ring8")
    assert len(centres) == 8 and std == 0.02
    torch.testing.assert_close(centres.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64))
    centres, std = data.toy_mixture("grid25")
    assert std == 0.05 and sorted(set(centres[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0] and len(centres) == 25
    points = data.sample_toy("grid25", 5000, torch.Generator().manual_seed(0)).double()
    nearest = torch.cdist(points, centres).min(dim=1)
    assert nearest.values.max() < 6 * std and len(nearest.indices.unique()) == 25


@pytest.mark.parametrize("arch, extra", [
    ("dcgan", ["--loss", "minkowski", "--p", "3", "--label-smooth", "0.1", "--instance-noise", "0.1"]),
    ("dcgan", ["--loss", "wgan-gp", "--n-critic", "2", "--sn"]),
    ("pytorchgan", ["--loss", "nsgan", "--lr-d", "4e-4", "--lr-g", "1e-4"]),
])
def test_image_models_train_on_a_folder(arch, extra, tiny_images, tmp_path):
    out = str(tmp_path / "run")
    argv = ["--dataset", "folder", "--data-root", tiny_images, "--arch", arch, "--width", "8", "--batch-size", "8",
            "--steps", "4", "--log-every", "2", "--out", out, *extra]
    assert run(argv) == 0
    assert summary(out)["status"] == "completed"
    G, cfg, step = rundir.load_generator(out)
    assert not G.training and cfg["arch"] == arch and step == 4
    with torch.no_grad():
        images = G(torch.randn(3, cfg["z_dim"]))
    assert images.shape == (3, 3, 32, 32) and images.abs().max() <= 1
    assert os.path.getsize(os.path.join(out, "samples", "step0000004.png")) > 0


@pytest.mark.parametrize("scale", [1.0, 1e-25])
def test_grad_norm_is_the_l2_norm_of_every_gradient_even_where_float32_squares_underflow(scale):
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    grads = [torch.randn_like(p) * scale for p in net.parameters()]
    for p, g in zip(net.parameters(), grads):
        p.grad = g
    expected = torch.cat([g.double().flatten() for g in grads]).pow(2).sum().sqrt()
    assert (scale == 1.0) == (torch.nn.utils.get_total_norm(grads).item() > 0)  # float32 squares: 0 at 1e-25
    norm = trainstep.grad_norm(net)
    assert norm.dtype == torch.float32
    assert norm.item() == pytest.approx(expected.item(), rel=1e-6)


def test_weight_clipping_bounds_every_d_parameter(tmp_path):
    out = str(tmp_path / "run")
    assert run(["--loss", "gan", "--clip", "0.01", "--steps", "5", "--out", out, *TOY]) == 0
    D = torch.load(os.path.join(out, "checkpoints", "last.pt"), weights_only=True)["D"]
    assert max(v.abs().max().item() for v in D.values()) <= 0.01
    out2 = str(tmp_path / "noclip")
    assert run(["--loss", "gan", "--clip", "0", "--steps", "5", "--out", out2, *TOY]) == 0
    D = torch.load(os.path.join(out2, "checkpoints", "last.pt"), weights_only=True)["D"]
    assert max(v.abs().max().item() for v in D.values()) > 0.01


def test_batches_cover_each_epoch_once_and_replay_from_a_position():
    data = torch.arange(20)
    b = trainstep.Batches(data, 4, seed=3)
    epoch0 = torch.cat([b.next() for _ in range(5)])
    assert sorted(epoch0.tolist()) == list(range(20))
    epoch1 = torch.cat([b.next() for _ in range(5)])
    assert not torch.equal(epoch0, epoch1)
    replay = trainstep.Batches(data, 4, seed=3, drawn=7)
    assert torch.equal(replay.next(), epoch1[8:12])


def signal_mid_step(monkeypatch, step, signals):
    """Send `signals` to this process inside G's update of `step`: D has already taken its step."""
    original = trainstep.Trainer.generator_step

    def generator_step(self, *args):
        if self.step == step:
            for sig in signals:
                os.kill(os.getpid(), sig)
        return original(self, *args)

    monkeypatch.setattr(trainstep.Trainer, "generator_step", generator_step)


def assert_same_run(a_dir, b_dir):
    a = torch.load(os.path.join(a_dir, "checkpoints", "last.pt"), weights_only=True)
    b = torch.load(os.path.join(b_dir, "checkpoints", "last.pt"), weights_only=True)
    for net in ("G", "D", "opt_d", "opt_g"):
        torch.testing.assert_close(a[net], b[net], rtol=0, atol=0, msg=lambda m: f"{net} differs after resume: {m}")
    assert torch.equal(a["rng"], b["rng"])
    ma, mb = (pd.read_csv(os.path.join(d, "metrics.csv")) for d in (a_dir, b_dir))
    assert ma["step"].tolist() == mb["step"].tolist()  # rows after the checkpoint were not duplicated
    pd.testing.assert_frame_equal(ma.drop(columns="seconds"), mb.drop(columns="seconds"))


RESUME_ARGV = ["--loss", "wgan-gp", "--n-critic", "2", "--instance-noise", "0.5", "--steps", "30", *TOY]


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("straight") / "run")
    assert run([*RESUME_ARGV, "--out", out]) == 0
    return out


def test_a_signal_mid_step_stops_after_that_step_and_resume_is_exact(tmp_path, monkeypatch, straight_run):
    """SIGTERM (a scheduler) while G updates at step 17: the step finishes, the checkpoint is whole."""
    import signal
    resumed = str(tmp_path / "resumed")
    with monkeypatch.context() as m:
        signal_mid_step(m, 17, [signal.SIGTERM])
        assert run([*RESUME_ARGV, "--out", resumed]) == 130
    assert summary(resumed)["status"] == "interrupted" and summary(resumed)["step"] == 18
    assert torch.load(os.path.join(resumed, "checkpoints", "last.pt"), weights_only=True)["step"] == 18
    assert run([*RESUME_ARGV, "--out", resumed]) == 2  # an existing run needs --resume
    assert run([*RESUME_ARGV, "--out", resumed, "--resume"]) == 0
    assert summary(resumed)["status"] == "completed"
    assert_same_run(straight_run, resumed)


def test_a_second_ctrl_c_stops_at_once_and_resumes_from_the_last_checkpoint(tmp_path, monkeypatch, straight_run):
    import signal
    resumed = str(tmp_path / "resumed")
    with monkeypatch.context() as m:
        signal_mid_step(m, 17, [signal.SIGINT, signal.SIGINT])
        assert run([*RESUME_ARGV, "--out", resumed]) == 130
    assert summary(resumed)["status"] == "interrupted"
    assert torch.load(os.path.join(resumed, "checkpoints", "last.pt"), weights_only=True)["step"] == 10
    assert run([*RESUME_ARGV, "--out", resumed, "--resume"]) == 0
    assert_same_run(straight_run, resumed)


def test_resume_without_a_checkpoint_refuses_and_overwrite_starts_clean(tmp_path, monkeypatch, straight_run, capsys):
    """A run that crashed before its first checkpoint has nothing to resume: --resume refuses and
    touches nothing (it once trained a new run over the old one's files); --overwrite starts again,
    keeps no stale rows and leaves the files that are not train.py's."""
    resumed = str(tmp_path / "resumed")
    with monkeypatch.context() as m:
        original = trainstep.Trainer.generator_step

        def crash_at_17(self, *args):
            if self.step == 17:
                raise RuntimeError("crash")
            return original(self, *args)

        m.setattr(trainstep.Trainer, "generator_step", crash_at_17)
        with pytest.raises(RuntimeError):
            train.main([*RESUME_ARGV, "--ckpt-every", "100", "--out", resumed])
    assert pd.read_csv(os.path.join(resumed, "metrics.csv"))["step"].tolist() == [5, 10, 15]
    (tmp_path / "resumed" / "keep.txt").write_text("not train.py's")
    before = {name: (tmp_path / "resumed" / name).read_bytes() for name in ("config.json", "metrics.csv", "keep.txt")}
    capsys.readouterr()
    assert run([*RESUME_ARGV, "--out", resumed, "--resume"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {resumed} holds a run's files (config.json, metrics.csv, samples, checkpoints) but no checkpoint " \
                  f"to resume from ({os.path.join(resumed, 'checkpoints', 'last.pt')}); pass --overwrite to train " \
                  f"it again, or another --out\n"
    assert {name: (tmp_path / "resumed" / name).read_bytes() for name in before} == before
    assert run([*RESUME_ARGV, "--out", resumed, "--overwrite"]) == 0
    assert_same_run(straight_run, resumed)
    assert (tmp_path / "resumed" / "keep.txt").exists()


def test_resume_without_a_checkpoint_is_refused_under_the_runs_lock_too(tmp_path):
    """The check is made again once this process holds the lock (its own lock is no other trainer)."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.csv").write_text("step\n5\n")
    cfg = settings.resolve(settings.build_parser().parse_args([*TOY, "--out", str(out), "--resume"]))
    with rundir.locked(str(out)), pytest.raises(utils.UserError, match="holds a run's files .metrics.csv. but no"):
        rundir.prepare_run_dir(cfg)
    assert (out / "metrics.csv").read_text() == "step\n5\n"


def test_resume_of_an_empty_or_new_folder_starts_the_run(tmp_path):
    """What a sweep's first start of each run relies on: --resume with no run there is a fresh run."""
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new"):
        assert run([*TOY, "--steps", "5", "--out", str(out), "--resume"]) == 0
        assert summary(str(out))["status"] == "completed"


def test_resume_cuts_torn_and_malformed_rows_of_metrics_csv_by_field_count_and_type(tmp_path, monkeypatch,
                                                                                  straight_run):
    """Observed: a last line of metrics.csv cut to `1` survived --resume as a row of step 1 with no values
    (pandas fills a short line; on_bad_lines="skip" catches only long ones)."""
    import signal
    resumed = str(tmp_path / "resumed")
    with monkeypatch.context() as m:
        signal_mid_step(m, 17, [signal.SIGTERM])
        assert run([*RESUME_ARGV, "--out", resumed]) == 130  # checkpoint at step 18, rows 5, 10 and 15
    with open(os.path.join(resumed, "metrics.csv"), "a") as f:
        f.write("16," + ",".join(["0.5"] * 13) + ",x\n")  # a cell that is no number
        f.write("17," + ",".join(["0.5"] * 15) + "\n")  # a field too many
        f.write("1")  # a row torn by a kill
    assert run([*RESUME_ARGV, "--out", resumed, "--resume"]) == 0
    assert_same_run(straight_run, resumed)


@pytest.mark.parametrize("killed_at", [20, 30])
def test_a_run_killed_during_an_eval_resumes_with_its_training(killed_at, tmp_path, monkeypatch):
    """The checkpoint before an eval (an FID takes minutes) keeps the training: --resume redoes only the eval."""
    from minkgan import evaluation as evaluate
    argv = [*RESUME_ARGV, "--eval-every", "10", "--eval-n", "200"]
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    assert run([*argv, "--out", straight]) == 0
    with monkeypatch.context() as m:
        original = evaluate.TrainingEvaluator.__call__

        def killed_during_eval(self, G, step):
            if step == killed_at:
                raise RuntimeError("killed")
            return original(self, G, step)

        m.setattr(evaluate.TrainingEvaluator, "__call__", killed_during_eval)
        with pytest.raises(RuntimeError):
            train.main([*argv, "--out", resumed])
    assert torch.load(os.path.join(resumed, "checkpoints", "last.pt"), weights_only=True)["step"] == killed_at
    assert run([*argv, "--out", resumed, "--resume"]) == 0
    assert_same_run(straight, resumed)
    evals = [pd.read_csv(os.path.join(d, "eval.csv")) for d in (straight, resumed)]
    assert evals[1]["step"].tolist() == [10, 20, 30]
    pd.testing.assert_frame_equal(*evals)
    s_straight, s_resumed = summary(straight), summary(resumed)
    del s_straight["seconds"], s_resumed["seconds"]
    assert s_resumed == s_straight


def test_resume_refuses_changed_settings(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert run(["--steps", "10", "--out", out, *TOY]) == 0
    assert run(["--steps", "20", "--lr", "1e-3", "--out", out, "--resume", *TOY]) == 2
    assert "trained with --lr 0.0002, not 0.001;" in capsys.readouterr().err  # the flag typed, not --lr-d
    assert run(["--steps", "20", "--lr-d", "1e-3", "--out", out, "--resume", *TOY]) == 2
    assert "trained with --lr 0.0002, not --lr-d 0.001;" in capsys.readouterr().err
    assert run(["--steps", "20", "--out", out, "--resume", *TOY]) == 0  # a longer budget is fine
    assert summary(out)["step"] == 20
    path = os.path.join(out, "config.json")  # a run from before --diversity existed resumes with its default
    cfg = json.load(open(path))
    del cfg["diversity"], cfg["config_version"]  # a version-1 config.json
    json.dump(cfg, open(path, "w"))
    assert run(["--steps", "25", "--out", out, "--resume", *TOY]) == 0
    assert run(["--steps", "30", "--diversity", "1", "--out", out, "--resume", *TOY]) == 2


def nan_d_loss_after(monkeypatch, n):
    """D's loss is NaN from its (n + 1)-th call on."""
    real_make_loss = losses.make_loss
    calls = {"n": 0}

    def make_loss(*args, **kwargs):
        d_loss, g_loss = real_make_loss(*args, **kwargs)

        def exploding_d_loss(r, f):
            calls["n"] += 1
            return d_loss(r, f) * (float("nan") if calls["n"] > n else 1.0)
        return exploding_d_loss, g_loss

    monkeypatch.setattr(losses, "make_loss", make_loss)


def test_a_nan_loss_stops_the_run_as_diverged_and_keeps_the_good_checkpoint(tmp_path, monkeypatch):
    nan_d_loss_after(monkeypatch, 13)
    out = str(tmp_path / "run")
    assert run(["--steps", "40", "--out", out, *TOY]) == 1
    s = summary(out)
    assert s["status"] == "diverged" and s["step"] == 15  # detected at the first log after step 14
    strict = json.loads(open(os.path.join(out, "summary.json")).read(), parse_constant=pytest.fail)  # no bare NaN
    assert strict["loss_d"] is None  # NaN is null, which the readers take for NaN
    ckpt = torch.load(os.path.join(out, "checkpoints", "last.pt"), weights_only=True)
    assert ckpt["step"] == 10
    assert all(torch.isfinite(v).all() for v in ckpt["G"].values())


def test_a_nan_between_log_steps_stops_the_run_at_the_next_checkpoint(tmp_path, monkeypatch):
    """Finiteness is read from the interval's sums (a NaN or an infinity stays in a sum), not step by
    step: a NaN at step 14 of an interval logged at 20 still stops the run at step 15's checkpoint."""
    nan_d_loss_after(monkeypatch, 13)
    out = str(tmp_path / "run")
    assert run(["--steps", "40", "--out", out, *TOY, "--log-every", "20", "--ckpt-every", "3"]) == 1
    assert summary(out)["status"] == "diverged" and summary(out)["step"] == 15
    assert torch.load(os.path.join(out, "checkpoints", "last.pt"), weights_only=True)["step"] == 12
    assert not os.path.exists(os.path.join(out, "metrics.csv")) or pd.read_csv(os.path.join(out, "metrics.csv")).empty


def test_existing_run_is_not_overwritten_without_a_flag(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert run(["--steps", "5", "--out", str(out), *TOY]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (out / "precious.txt").read_text() == "keep me"
    assert run(["--steps", "5", "--out", str(out), *TOY, "--overwrite"]) == 0
    assert run(["--steps", "10", "--out", str(out), *TOY, "--overwrite"]) == 0  # the old run is gone...
    assert pd.read_csv(out / "metrics.csv")["step"].tolist() == [5, 10]
    assert (out / "precious.txt").read_text() == "keep me"  # ...and only what train.py wrote


def test_a_corrupt_checkpoint_is_a_one_line_error(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert run(["--steps", "10", "--out", out, *TOY]) == 0
    path = os.path.join(out, "checkpoints", "last.pt")
    with open(path, "wb") as f:
        f.write(b"not a checkpoint")
    capsys.readouterr()
    assert run(["--steps", "20", "--out", out, "--resume", *TOY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint") and err.count("\n") == 1
    assert open(path, "rb").read() == b"not a checkpoint"


@pytest.mark.parametrize("argv, message", [
    (["--loss", "wasserstein"], "unknown loss"),
    (["--p", "0.5"], "--p must be"),
    (["--p", "nan"], "--p must be"),
    (["--lr", "0"], "--lr must be a positive"),
    (["--lr-g", "-0.0001"], "--lr-g must be a positive"),
    (["--adam-eps", "0"], "--adam-eps must be a positive"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--steps", "0"], "--steps must be"),
    (["--dataset", "mnist"], "unknown --dataset"),
    (["--dataset", "folder", "--data-root", "/nonexistent/images"], "does not exist"),
    (["--arch", "dcgan"], "does not fit"),
    (["--label-smooth", "0.1", "--loss", "wgan"], "label smoothing"),
    (["--epochs", "abc"], "invalid float value"),
    (["--diversity", "-1"], "--diversity must be >= 0"),
    (["--diversity", "1", "--batch-size", "1"], "two halves of a batch"),
    (["--arch", "nosuch"], "unknown --arch"),
    (["--device", "cuda:7"], "--device cuda:7"),
])
def test_bad_input_is_a_one_line_error(argv, message, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--dataset", "ring8", *argv] if "--dataset" not in argv else argv
    assert run([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_an_undownloadable_cifar10_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise RuntimeError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    out = tmp_path / "run"
    assert run(["--dataset", "cifar10", "--data-root", str(tmp_path / "data"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "CIFAR-10" in err and "--data-root" in err and err.count("\n") == 1
    assert not out.exists()


def test_command_line_error_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "train.py", "--loss", "nope", "--out", str(tmp_path / "r")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown loss") and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_pytorchgan_is_initialised_as_the_original():
    """PyTorch-GAN's weights_init_normal touches conv weights and BatchNorm only; the DCGAN init does more."""
    import models
    torch.manual_seed(0)
    G, D = models.build("pytorchgan")
    assert 0.05 < G.l1.weight.std().item() < 0.065  # nn.Linear's default U(+-1/sqrt(100)), std 0.058
    assert G.l1.bias.abs().max().item() > 0 and D.fc.bias.abs().item() > 0
    conv = G.conv[2]
    assert abs(conv.weight.std().item() - 0.02) < 0.002 and conv.bias.abs().max().item() > 0
    bn = G.conv[3]
    assert abs(bn.weight.mean().item() - 1) < 0.01 and bn.bias.abs().max().item() == 0
    G, D = models.build("dcgan")
    assert all(m.bias is None or m.bias.abs().max().item() == 0 for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d))


def test_diversity_term_enters_g_loss(tmp_path, monkeypatch):
    """--diversity adds weight * losses.mode_seeking(G(z), z) to G's loss, and nothing when it is 0."""
    seen = []
    original = losses.mode_seeking
    monkeypatch.setattr(losses, "mode_seeking", lambda fake, z: seen.append((fake.shape, z.shape)) or original(fake, z))
    base = ["--loss", "nsgan", "--steps", "5", "--batch-size", "16", *TOY]
    assert run([*base, "--out", str(tmp_path / "off")]) == 0 and seen == []
    assert run([*base, "--diversity", "1", "--out", str(tmp_path / "on")]) == 0
    assert seen == [(torch.Size([16, 2]), torch.Size([16, 100]))] * 5
    off, on = (pd.read_csv(tmp_path / d / "metrics.csv")["loss_g"] for d in ("off", "on"))
    assert (on > off).all()  # the term is positive: 1 / (ratio + eps)


def test_config_hardware_names_the_cpu_model(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: Fake\nmodel name\t: Fake CPU 9000 16-Core\n")
    assert precision.cpu_name(cpuinfo) == "Fake CPU 9000 16-Core"
    cpuinfo.write_text("processor\t: 0\n")  # no model line (some ARM kernels): the platform's name
    fallback = precision.cpu_name(cpuinfo)
    assert fallback and precision.cpu_name(tmp_path / "missing") == fallback


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch.cuda's RNG and name functions, recording what they are asked (no GPU needed)."""
    calls = []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: calls.append(("get", str(device))) or f"state-{device}")
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: calls.append(("set", state, str(device))))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: f"Fake GPU {torch.device(device).index}")
    return calls


def test_checkpoint_keeps_only_the_training_devices_cuda_rng(fake_cuda):
    cuda1 = torch.device("cuda:1")
    state = trainstep.cuda_rng_state(cuda1)
    assert state == "state-cuda:1" and fake_cuda == [("get", "cuda:1")]
    trainstep.restore_cuda_rng(state, torch.device("cuda:0"))  # trained on cuda:1, resumed on cuda:0
    assert fake_cuda[-1] == ("set", "state-cuda:1", "cuda:0")
    assert trainstep.cuda_rng_state(torch.device("cpu")) is None
    trainstep.restore_cuda_rng(None, cuda1)
    trainstep.restore_cuda_rng("x", torch.device("cpu"))
    assert len(fake_cuda) == 2


def test_old_checkpoints_with_every_gpus_rng_resume_on_fewer_gpus(fake_cuda):
    """Older checkpoints saved get_rng_state_all(): a list, possibly longer or shorter than the GPUs here."""
    trainstep.restore_cuda_rng(["s0", "s1"], torch.device("cuda:1"))
    assert fake_cuda == [("set", "s1", "cuda:1")]
    trainstep.restore_cuda_rng(["s0"], torch.device("cuda:1"))  # one GPU saved, none for index 1: no crash
    trainstep.restore_cuda_rng([], torch.device("cuda:0"))  # a CPU run's checkpoint
    assert len(fake_cuda) == 1


def test_hardware_is_the_training_devices(fake_cuda):
    assert rundir.hardware_name(torch.device("cuda:1")) == "Fake GPU 1"
    assert rundir.hardware_name(torch.device("cpu")).startswith(precision.cpu_name())


@pytest.fixture
def fake_tf32(monkeypatch):
    """train.py's TF32 switches on stand-ins, so that a test leaves torch's global flags alone."""
    conv, matmul = types.SimpleNamespace(precision="unset"), types.SimpleNamespace(precision="unset")
    monkeypatch.setattr(train, "tf32_switches", lambda: [(conv, "precision", "tf32", "ieee"),
                                                         (matmul, "precision", "tf32", "ieee")])
    return conv, matmul


def test_deterministic_flag_turns_off_cudnn_benchmark(monkeypatch, fake_tf32):
    calls = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda mode, warn_only: calls.append((mode, warn_only)))
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    train.set_determinism(torch.device("cuda:0"), False)
    assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic and not calls
    train.set_determinism(torch.device("cuda:0"), True)
    assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
    assert calls == [(True, True)] and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert settings.build_parser().parse_args(["--deterministic"]).deterministic


@pytest.mark.parametrize("deterministic, flag, mode", [(False, "auto", "conv"), (True, "auto", "off"),
                                                        (True, "all", "all"), (False, "off", "off")])
def test_tf32_is_off_under_deterministic_unless_chosen_and_the_mode_is_returned(monkeypatch, fake_tf32,
                                                                                deterministic, flag, mode):
    """Observed: TF32 was on for cuDNN's convolutions (torch's default) in every GPU run, under
    --deterministic too, and config.json did not say so."""
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda *a, **k: None)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    assert train.set_determinism(torch.device("cuda:0"), deterministic, flag) == mode
    conv, matmul = fake_tf32
    assert (conv.precision, matmul.precision) == {"off": ("ieee", "ieee"), "conv": ("tf32", "ieee"),
                                                  "all": ("tf32", "tf32")}[mode]
    conv.precision = matmul.precision = "unset"
    assert train.set_determinism(torch.device("cpu"), deterministic, flag) is None  # no TF32 on a CPU
    assert conv.precision == matmul.precision == "unset"
    assert settings.build_parser().parse_args(["--tf32", flag]).tf32 == flag


def test_run_names_show_a_non_default_critic_count():
    def name(loss, p, n_critic, seed, **settings_):
        return settings.run_name(dict(loss=loss, p=p, n_critic=n_critic, seed=seed, **settings_))
    assert name("wgan", None, 5, 0) == "wgan-seed0"
    assert name("wgan", None, 1, 2) == "wgan-ncritic1-seed2"
    assert name("minkowski", 2.5, 1, 1) == "minkowski-p2.5-seed1"
    assert name("gan", None, 3, 0) == "gan-ncritic3-seed0"
    assert name("minkowski", 8.0, 1, 0, adam_eps=1e-8) == "minkowski-p8-seed0"
    assert name("minkowski", 8.0, 1, 0, adam_eps=1e-12) == "minkowski-p8-eps1e-12-seed0"
    assert name("gan", None, 1, 0, clip=0.01, clip_params="weights") == "gan-clipweights-seed0"
    assert name("gan", None, 1, 0, clip=0.01, dataset="ring8") == "gan-clip0.01-seed0"
    assert name("wgan", None, 5, 0, clip=0.01, dataset="ring8") == "wgan-seed0"  # WGAN's own default
    assert name("gan", None, 1, 0, clip=0.0, clip_params="weights") == "gan-clip0-seed0"  # nothing clipped
    assert name("gan", None, 1, 0, precision="bfloat16") == "gan-bfloat16-seed0"


def test_long_options_are_every_flag_of_train_py():
    parsed = [o for action in settings.build_parser()._actions for o in action.option_strings if o.startswith("--")]
    assert sorted(settings.long_options()) == sorted(o for o in parsed if o != "--help")


def test_adam_eps_reaches_both_optimizers_and_a_resume_keeps_it(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert run(["--loss", "gan", "--steps", "2", "--adam-eps", "1e-12", "--out", out, *TOY]) == 0
    ckpt = torch.load(os.path.join(out, "checkpoints", "last.pt"), weights_only=True)
    assert [ckpt[opt]["param_groups"][0]["eps"] for opt in ("opt_g", "opt_d")] == [1e-12, 1e-12]
    assert run(["--loss", "gan", "--steps", "3", "--resume", "--out", out, *TOY]) == 2
    assert "trained with --adam-eps 1e-12, not 1e-08" in capsys.readouterr().err
    default = settings.resolve(settings.build_parser().parse_args(["--adam-eps", "1e-12", "--p", "8"]))["out"]
    assert default == os.path.join("runs", "cifar10", "minkowski-p8-eps1e-12-seed0")


@pytest.mark.parametrize("which", ["all", "weights"])
def test_clip_params_chooses_what_is_clipped_and_the_share_at_the_bound_is_logged(which, tiny_images, tmp_path):
    out = str(tmp_path / which)
    argv = ["--loss", "gan", "--dataset", "folder", "--data-root", tiny_images, "--width", "4", "--batch-size", "8",
            "--steps", "3", "--log-every", "1", "--clip", "0.01", "--clip-params", which, "--out", out]
    assert run(argv) == 0
    D = torch.load(os.path.join(out, "checkpoints", "last.pt"), weights_only=True)["D"]
    weights = [v for k, v in D.items() if v.dim() > 1]
    others = [v for k, v in D.items() if v.dim() == 1 and k.endswith(("weight", "bias"))]
    assert max(v.abs().max().item() for v in weights) <= 0.01
    assert (max(v.abs().max().item() for v in others) <= 0.01) == (which == "all")  # BatchNorm's weight starts at 1
    clipped = weights + (others if which == "all" else [])
    share = sum((v.abs() >= 0.01 * (1 - 1e-6)).sum().item() for v in clipped) / sum(v.numel() for v in clipped)
    metrics = pd.read_csv(os.path.join(out, "metrics.csv"))
    assert metrics["clip_share"].iloc[-1] == pytest.approx(share, rel=1e-5) and 0 < share < 1


def test_logit_statistics_are_the_batch_statistics(tmp_path):
    trainer = trainstep.Trainer.__new__(trainstep.Trainer)
    trainer.cfg, trainer.clipped = {"clip": 0.0}, []
    real, fake = torch.tensor([0.5, -1.0, 2.0]), torch.tensor([-3.0, 1.0, 1.0])
    stats = trainer.logit_stats(real, fake)
    expected = [torch.sigmoid(real).mean(), torch.sigmoid(fake).mean(), real.mean(), fake.mean(),
                (real - real.mean()).pow(2).mean().sqrt(), (fake + 1 / 3).pow(2).mean().sqrt(), torch.tensor(3.0),
                torch.tensor(0.0)]
    torch.testing.assert_close(stats, torch.stack(expected))
    assert len(stats) == len(rundir.LOGIT_STATS)


STAT_COLUMNS = rundir.LOGIT_STATS


def test_logged_statistics_are_interval_means_of_the_per_step_statistics(tiny_images, tmp_path, monkeypatch):
    """metrics.csv's columns are means over each log interval of per-step statistics. Here each step's
    are computed the plain way (one reduction per statistic, one comparison per parameter tensor, in
    float64) from the logits and clipped parameters the step had: the leaner step logs the same numbers."""
    per_step = []
    leaner = trainstep.Trainer.logit_stats

    def also_the_plain_way(self, logit_real, logit_fake):
        r, f, bound = logit_real.double(), logit_fake.double(), self.cfg["clip"] * (1 - 1e-6)
        at = sum(int((p.abs() >= bound).sum()) for p in self.clipped) / sum(p.numel() for p in self.clipped)
        per_step.append([torch.sigmoid(r).mean(), torch.sigmoid(f).mean(), r.mean(), f.mean(), r.std(correction=0),
                         f.std(correction=0), torch.maximum(r.abs().max(), f.abs().max()), at])
        return leaner(self, logit_real, logit_fake)

    monkeypatch.setattr(trainstep.Trainer, "logit_stats", also_the_plain_way)
    out = str(tmp_path / "run")
    assert run(["--loss", "gan", "--dataset", "folder", "--data-root", tiny_images, "--width", "4", "--batch-size", "8",
                "--steps", "6", "--log-every", "3", "--clip", "0.01", "--out", out]) == 0
    expected = torch.tensor(per_step, dtype=torch.float64).reshape(2, 3, len(STAT_COLUMNS)).mean(1)
    logged = pd.read_csv(os.path.join(out, "metrics.csv"))[STAT_COLUMNS].to_numpy()
    assert logged == pytest.approx(expected.numpy(), rel=2e-5, abs=1e-7)
    assert (0 < logged[:, -1]).all() and (logged[:, -1] < 1).all() and (logged[0] != logged[1]).all()


def test_share_at_bound_counts_every_parameter_at_the_bound_exactly():
    c = 0.01
    t = torch.tensor(c * (1 - 1e-6))  # float32, as the comparison makes it
    edges = torch.stack([t, torch.nextafter(t, torch.tensor(1.0)), torch.nextafter(t, torch.tensor(0.0)),
                         torch.tensor(c), torch.tensor(0.0)])  # at, at, below, at, below
    inside = (torch.rand(3, 4, 2, 2, generator=torch.Generator().manual_seed(0)) * 1.8 - 0.9) * c
    params = [edges, -edges.flip(0), inside.contiguous(memory_format=torch.channels_last)]
    values = [v for p in params for v in p.flatten().tolist()]
    assert sum(abs(v) >= t.item() for v in values) == 6
    assert trainstep.share_at_bound(params, c).item() == pytest.approx(6 / len(values), rel=1e-7)


def test_the_step_statistics_take_the_same_kernels_whatever_the_number_of_parameters():
    """Observed: share_at_bound ran three kernels and an addition per clipped tensor, about 45 of the
    ATen ops of a DCGAN step. Now one view per tensor (no kernel), then one concatenation."""
    from bench.step import aten_ops
    trainer = trainstep.Trainer.__new__(trainstep.Trainer)
    trainer.cfg = {"clip": 0.01}
    real, fake = torch.randn(8), torch.randn(8)
    counts = []
    for n in (2, 20):
        trainer.clipped = [torch.full((3, 2), 0.01) for _ in range(n)]
        counts.append(aten_ops(lambda: trainer.logit_stats(real, fake)))
    assert counts[1] - counts[0] <= 18 and counts[0] < 25


def test_adam_is_fused_on_a_gpu_and_torchs_default_on_the_cpu():
    assert trainstep.adam_options(torch.device("cuda:1")) == {"fused": True}
    assert trainstep.adam_options(torch.device("cpu")) == {"fused": None}  # the CPU runs' weights stay the same


def test_a_resume_uses_this_devices_adam_whatever_the_checkpoint_says(tmp_path):
    """load_state_dict takes the saved groups' flags along: a GPU run's checkpoint (fused) resumed on the
    CPU ran fused Adam there, other arithmetic than every CPU run's."""
    out = str(tmp_path / "run")
    assert run(["--loss", "gan", "--steps", "2", "--out", out, *TOY]) == 0
    path = os.path.join(out, "checkpoints", "last.pt")
    ckpt = torch.load(path, weights_only=True)
    for opt in ("opt_g", "opt_d"):
        for group in ckpt[opt]["param_groups"]:
            group["fused"] = True
    trainer = trainstep.Trainer(settings.resolve(settings.build_parser().parse_args(["--loss", "gan", "--out", out, *TOY])),
                            torch.device("cpu"))
    trainer.load_state(ckpt, path)
    assert [g["fused"] for opt in (trainer.opt_g, trainer.opt_d) for g in opt.param_groups] == [None, None]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_runs_use_fused_adam_also_when_resuming_a_cpu_run(tmp_path):
    out = str(tmp_path / "run")
    assert run(["--loss", "gan", "--steps", "2", "--device", "cpu", "--out", out, *TOY]) == 0
    assert run(["--loss", "gan", "--steps", "4", "--device", "cuda", "--resume", "--out", out, *TOY]) == 0
    ckpt = torch.load(os.path.join(out, "checkpoints", "last.pt"), weights_only=True)
    assert ckpt["step"] == 4
    assert [g["fused"] for opt in ("opt_g", "opt_d") for g in ckpt[opt]["param_groups"]] == [True, True]


def test_eval_at_evaluates_at_those_steps_and_the_end(tmp_path):
    out = str(tmp_path / "run")
    assert run(["--loss", "gan", "--steps", "12", "--eval-at", "3", "7", "--eval-n", "200", "--out", out, *TOY]) == 0
    assert list(pd.read_csv(os.path.join(out, "eval.csv"))["step"]) == [3, 7, 12]
    both = str(tmp_path / "both")
    assert run(["--loss", "gan", "--steps", "12", "--eval-at", "3", "--eval-every", "10", "--eval-n", "200",
                "--out", both, *TOY]) == 0
    assert list(pd.read_csv(os.path.join(both, "eval.csv"))["step"]) == [3, 10, 12]


def test_save_at_keeps_checkpoints_at_those_steps(tmp_path):
    out = str(tmp_path / "run")
    assert run(["--loss", "gan", "--steps", "12", "--save-at", "0", "3", "12", "--out", out, *TOY]) == 0
    kept = sorted(os.listdir(os.path.join(out, "checkpoints")))
    assert kept == ["last.pt", "step0000000.pt", "step0000003.pt", "step0000012.pt"]
    first = torch.load(os.path.join(out, "checkpoints", "step0000000.pt"), weights_only=True)
    third = torch.load(os.path.join(out, "checkpoints", "step0000003.pt"), weights_only=True)
    assert first["step"] == 0 and third["step"] == 3
    assert not all(torch.equal(first["G"][k], third["G"][k]) for k in first["G"])
    torch.manual_seed(0)  # step 0 is the initialisation: the same seed builds the same G
    G, _ = rundir.build_models(settings.resolve(settings.build_parser().parse_args(["--loss", "gan", *TOY])), "cpu")
    assert all(torch.equal(v, first["G"][k]) for k, v in G.state_dict().items())


def test_a_run_directory_is_trained_by_one_process_at_a_time(tmp_path, capsys):
    """Observed: nothing stopped two processes from training one run directory at once."""
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "train.py", "--steps", "1000000", "--out", str(out), *TOY], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not (out / "metrics.csv").exists() or len((out / "metrics.csv").read_text().splitlines()) < 2:
            assert first.poll() is None, "the first run ended"
            time.sleep(0.1)
        capsys.readouterr()
        assert run(["--steps", "1000000", "--out", str(out), "--resume", *TOY]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and f"process {first.pid}" in err and err.count("\n") == 1
    finally:
        first.terminate()
        first.wait(timeout=120)
    assert summary(out)["status"] == "interrupted"  # the second process did not touch it
    assert run(["--steps", "20", "--out", str(out), "--overwrite", *TOY]) == 0  # the lock went with its process


def test_stale_temporary_files_are_removed_at_the_next_start(tmp_path):
    """Observed: each kill during an atomic write left a .tmp-*last.pt of full checkpoint size behind."""
    out = tmp_path / "run"
    assert run(["--steps", "10", "--out", str(out), *TOY]) == 0
    stale = [out / "checkpoints" / ".tmp-x1y2last.pt", out / ".tmp-z3summary.json"]
    for path in stale:
        path.write_bytes(b"half a write")
    assert run(["--steps", "10", "--out", str(out), "--resume", *TOY]) == 0
    assert not any(path.exists() for path in stale) and (out / "checkpoints" / "last.pt").exists()


def test_out_naming_a_file_is_a_one_line_error(tmp_path, capsys):
    """Observed: --out naming an existing file ended in NotADirectoryError."""
    (tmp_path / "file").write_text("mine")
    assert run(["--steps", "5", "--out", str(tmp_path / "file"), *TOY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--out" in err and err.count("\n") == 1
    assert (tmp_path / "file").read_text() == "mine"


def test_a_corrupt_image_in_the_folder_is_a_one_line_error(tiny_images, tmp_path, capsys):
    """Observed: --dataset folder with a corrupt image ended in PIL.UnidentifiedImageError."""
    import shutil
    root = tmp_path / "images"
    shutil.copytree(tiny_images, root)
    (root / "class0" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "run"
    assert run(["--dataset", "folder", "--data-root", str(root), "--steps", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "broken.png" in err and err.count("\n") == 1
    assert not out.exists()  # bad input leaves no run directory behind


def test_a_symlink_loop_or_an_empty_class_folder_adds_no_image(tiny_images, tmp_path):
    """Observed: a link cat/again -> . loaded one class about 40 times, and an empty class folder beside
    40 images ended in "no images found". Each real folder is read once; an empty one adds nothing."""
    import shutil
    root = tmp_path / "images"
    shutil.copytree(tiny_images, root)
    (root / "class0" / "again").symlink_to(".")
    (root / "class1" / "up").symlink_to("../class0")  # the same folder by another way: read once
    (root / "class2").mkdir()
    import torchvision
    import torchvision.transforms as T
    transform = T.Compose([T.Resize(data.IMAGE_SIZE), T.CenterCrop(data.IMAGE_SIZE), T.PILToTensor()])
    plain = torchvision.datasets.ImageFolder(tiny_images, transform=transform)
    images = torch.stack([plain[i][0] for i in range(len(plain))])  # what the runs so far were trained on
    assert torch.equal(data.load_folder(tiny_images), images)
    assert torch.equal(data.load_folder(str(root)), images)
    (tmp_path / "none" / "cat").mkdir(parents=True)
    with pytest.raises(utils.UserError, match="no images found in .*none"):
        data.load_folder(str(tmp_path / "none"))


@pytest.mark.parametrize("p, gradients, squares", [(settings.MAX_P, "normal", "normal"), (90, "normal", "zero"),
                                                     (160, "zero", "zero")])
def test_p_above_the_bound_leaves_float32_gradients_or_their_squares_zero(p, gradients, squares):
    """Why --p stops at MAX_P: every run starts at D = 1/2, where the Minkowski loss's gradient per
    logit is 2^-(p+1) / batch. Adam divides by the root of its square: at MAX_P the squares of D's and
    G's largest gradients are still normal float32 numbers, at 90 they are 0 (Adam's step is then the
    gradient over eps: nothing), at 160 the gradients themselves are (observed at --p 1e6: 200 steps
    of zero losses and gradients, "completed")."""
    torch.manual_seed(0)
    G, D = models.build("mlp", 8, 64)
    d_loss, g_loss = losses.make_loss("minkowski", p)
    real, fake = data.sample_toy("ring8", 64), G(torch.randn(64, 8))
    d_loss(D(real), D(fake.detach())).backward()
    g_loss(D(fake)).backward()
    kind = lambda x: "zero" if x == 0 else "normal" if x >= torch.finfo(torch.float32).tiny else "subnormal"  # noqa: E731
    for net in (D, G):
        largest = torch.cat([q.grad.flatten() for q in net.parameters()]).abs().max()
        assert (kind(largest), kind(largest.square())) == (gradients, squares), (p, largest)


@pytest.mark.parametrize("case", ["no G", "another width"])
def test_resume_checks_the_checkpoint_belongs_to_the_run(case, tmp_path, capsys):
    """Observed: --resume with a checkpoint without G ended in KeyError, one of another --width in a
    size-mismatch traceback. Now both are one line, and nothing of the run is changed."""
    out = tmp_path / "run"
    assert run(["--steps", "10", "--out", str(out), "--width", "16", *TOY]) == 0
    path = out / "checkpoints" / "last.pt"
    if case == "no G":
        ckpt = torch.load(path, weights_only=True)
        del ckpt["G"]
        torch.save(ckpt, path)
    else:
        assert run(["--steps", "10", "--out", str(tmp_path / "wide"), "--width", "32", *TOY]) == 0
        path.write_bytes((tmp_path / "wide" / "checkpoints" / "last.pt").read_bytes())
    before = {f: (out / f).read_bytes() for f in ("metrics.csv", "summary.json", "checkpoints/last.pt")}
    capsys.readouterr()
    assert run(["--steps", "20", "--out", str(out), "--width", "16", "--resume", *TOY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint" if case == "no G" else "error: the G in checkpoint") and err.count("\n") == 1
    assert ("lacks G" if case == "no G" else "does not fit") in err
    assert before == {f: (out / f).read_bytes() for f in before}


def test_check_device_names_the_gpus_there_are(monkeypatch):
    """Observed: --device cuda:7 on a machine without that GPU ended in a CUDA traceback."""
    from minkgan.utils import UserError, check_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(UserError, match="has 2 GPU"):
        check_device("cuda:7")


def test_config_records_what_ran_and_only_what_applies(tmp_path):
    """Observed: config.json said "epochs": 200 for a run that --steps made shorter, and "d_norm":
    "batch" for an MLP, which has no normalisation."""
    out = tmp_path / "run"
    assert run(["--steps", "781", "--out", str(out), "--log-every", "781", "--sample-every", "100000",
                "--ckpt-every", "100000", "--dataset", "ring8"]) == 0
    cfg = json.load(open(out / "config.json"))
    per_epoch = trainstep.TOY_TRAIN_SIZE // 64
    assert (cfg["steps"], cfg["total_steps"], cfg["epochs"]) == (781, 781, round(781 / per_epoch, 4)) == \
        (781, 781, 0.5)
    assert cfg["d_norm"] is None and cfg["clip_params"] is None and cfg["gp_center"] is None  # no norm, clip, penalty
    assert cfg["tf32"] is None  # a CPU run has no TF32 (a GPU run records off, conv or all)
    assert summary(out)["epoch"] == 0.5


def test_evaluate_gives_the_numbers_of_the_training_evaluation(tmp_path):
    """Observed: eval.csv and evaluate.py used different noise seeds for one checkpoint (hq 99.92 vs 99.68)."""
    from minkgan import evaluation as evaluate
    out = tmp_path / "run"
    assert run(["--steps", "200", "--out", str(out), "--eval-every", "200", "--eval-n", "500", *TOY]) == 0
    assert evaluate.main([str(out), "--n", "500", "--csv", str(tmp_path / "toy.csv")]) == 0
    ours, theirs = pd.read_csv(out / "eval.csv").iloc[-1], pd.read_csv(tmp_path / "toy.csv").iloc[0]
    assert (ours["modes"], ours["hq_pct"]) == (theirs["modes"], theirs["hq_pct"])
    assert ours["rkl"] == pytest.approx(theirs["rkl"], rel=1e-12, nan_ok=True)


def test_summary_keeps_the_best_of_each_metric_that_has_a_direction():
    evals = [{"step": 10, "fid": 90.0, "recall": 0.2, "coverage": 0.5, "density": 1.4, "precision": 0.7},
             {"step": 20, "fid": 80.0, "recall": 0.1, "coverage": 0.6, "density": 0.9, "precision": 0.6}]
    out = rundir.eval_summary(evals)
    assert (out["best_fid"], out["best_fid_step"], out["best_recall"], out["best_recall_step"]) == (80.0, 20, 0.2, 10)
    assert (out["best_coverage"], out["best_precision"]) == (0.6, 0.7)
    assert "best_density" not in out and out["final_density"] == 0.9


FAST_RUN = ["--dataset", "folder", "--width", "8", "--batch-size", "8", "--steps", "3", "--log-every", "1"]
STEP_STATS = ["loss_d", "loss_g", "d_real", "d_fake", "logit_real", "logit_fake", "grad_norm_d", "grad_norm_g"]


@pytest.mark.parametrize("flag", ["--channels-last", "--compile"])
def test_speed_flags_train_the_eager_run_within_rounding(flag, tiny_images, tmp_path):
    """Same model, other kernels: every logged statistic of 3 steps equals eager's to 1e-4 relative
    (float32 reordering; the 6 logged digits agree here), and G's images on fixed noise to 1e-4. A wrong layout or
    a stale compiled graph would be off by orders more. The checkpoint loads into a plain model."""
    runs = {}
    for name, extra in (("eager", []), ("fast", [flag])):
        runs[name] = str(tmp_path / name)
        assert run([*FAST_RUN, "--data-root", tiny_images, "--out", runs[name], *extra]) == 0
    eager, fast = (pd.read_csv(os.path.join(runs[n], "metrics.csv")) for n in ("eager", "fast"))
    for column in STEP_STATS:
        assert fast[column].to_numpy() == pytest.approx(eager[column].to_numpy(), rel=1e-4, abs=1e-7), column
    z = torch.randn(16, 100, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        images = [rundir.load_generator(runs[n])[0](z) for n in ("eager", "fast")]
    assert (images[0] - images[1]).abs().max() < 1e-4
    assert json.load(open(os.path.join(runs["fast"], "config.json")))[flag[2:].replace("-", "_")] is True
    trainer = trainstep.Trainer(settings.resolve(settings.build_parser().parse_args([*FAST_RUN, flag])), torch.device("cpu"))
    conv = next(m for m in trainer.D.modules() if isinstance(m, torch.nn.Conv2d))
    if flag == "--channels-last":  # the flag took effect: the comparison above is not eager against eager
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    else:
        assert trainer.G._compiled_call_impl is not None and trainer.D._compiled_call_impl is not None


def test_compile_leaves_d_eager_under_a_gradient_penalty():
    """torch.compile has no double backward, which the penalty's gradient takes through D."""
    for gp, d_compiled in ((0.0, True), (10.0, False)):
        G, D = models.build("dcgan", width=8)
        trainstep.tune_for_speed(G, D, {"compile": True, "gp": gp})
        assert G._compiled_call_impl is not None and (D._compiled_call_impl is not None) == d_compiled


def test_a_step_returns_one_statistic_per_name_and_metrics_csv_logs_them_under_it(tmp_path):
    """The step statistics have names: train_step's tensor has one value per STEP_STATS name, and
    metrics.csv's columns are the step, the epoch, those names and the seconds."""
    out = tmp_path / "run"
    assert train.main(["--dataset", "ring8", "--steps", "3", "--log-every", "1", "--eval-every", "0", "--out", str(out)]) == 0
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns) == ["step", "epoch", *rundir.STEP_STATS, "seconds"] and len(metrics) == 3
    cfg = settings.resolve(settings.build_parser().parse_args(["--dataset", "ring8", "--out", str(tmp_path / "other")]))
    trainer = trainstep.Trainer(cfg, torch.device("cpu"))
    stats = trainer.train_step(trainstep.Batches(torch.randn(256, 2), 64, 0), 10)
    assert stats.shape == (len(rundir.STEP_STATS),)
    named = dict(zip(rundir.STEP_STATS, stats.tolist()))
    assert 0 < named["d_real"] < 1 and 0 < named["d_fake"] < 1 and named["logit_absmax"] >= abs(named["logit_real"])


def test_an_old_config_is_read_as_this_versions(tmp_path):
    """Version 1 (no config_version) lacks the settings added since: each is its default, in one place."""
    new = settings.resolve(settings.build_parser().parse_args(TOY))
    old = {k: v for k, v in new.items() if k not in ("precision", "fid_precision", "eval_at", "tensorboard", "tf32", "config_version")}
    (tmp_path / "config.json").write_text(json.dumps(old))
    cfg = rundir.read_config(str(tmp_path))
    assert cfg["precision"] == cfg["fid_precision"] == "float32" and cfg["eval_at"] == [] and cfg["tf32"] is None
    assert cfg["config_version"] == settings.CONFIG_VERSION and not cfg["tensorboard"]
    (tmp_path / "config.json").write_text(json.dumps({**old, "precision": "bfloat16"}))
    assert rundir.read_config(str(tmp_path))["precision"] == "bfloat16"  # what a config holds is kept
    current = {k: v for k, v in new.items() if k != "seed"}
    (tmp_path / "config.json").write_text(json.dumps(current))
    with pytest.raises(utils.UserError, match="lacks seed"):
        rundir.read_config(str(tmp_path))
