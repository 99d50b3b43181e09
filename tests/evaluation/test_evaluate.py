"""evaluate.py: Inception plumbing (random weights), run
evaluation, statistics cache, CSV rows, tables, bad input; one test with the real weights."""
import json
import math
import os
import re
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from minkgan import paper
import torch

from minkgan import data
from minkgan import evaluation as evaluate
from minkgan import eval_tables
from minkgan import inception
from minkgan import metrics
import models

from layout import ROOT  # noqa: E402
REAL_WEIGHTS = os.path.join(os.path.expanduser("~"), ".cache", "torch", "hub", "checkpoints",
                            inception.FID_WEIGHTS_NAME)


# ----------------------------------------------------------------------------- helpers

def make_run(root, name, dataset="folder", data_root="", arch="dcgan", width=8, z_dim=16, corrupt=False,
             checkpoint=True):
    run = os.path.join(root, name)
    os.makedirs(os.path.join(run, "checkpoints"), exist_ok=True)
    cfg = dict(loss="minkowski", p=4.0, minkowski_on="probs", dataset=dataset, data_root=data_root, arch=arch,
               z_dim=z_dim, width=width, d_norm="batch", sn=False, seed=3, epochs=1.0, steps=7, batch_size=8,
               device="cpu")
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump(cfg, f)
    path = os.path.join(run, "checkpoints", "last.pt")
    if corrupt:
        with open(path, "wb") as f:
            f.write(b"not a checkpoint at all")
    elif checkpoint:
        torch.manual_seed(0)
        G, D = models.build(arch, z_dim, width, "batch", False)
        torch.save({"G": G.state_dict(), "D": D.state_dict(), "opt_g": {}, "opt_d": {}, "rng": {}, "step": 7,
                    "epoch": 1}, path)
    with open(os.path.join(run, "summary.json"), "w") as f:
        json.dump({"status": "completed", "step": 7}, f)
    return run


def save_pngs(folder, n, seed, size=32, smooth=False):
    from PIL import Image
    os.makedirs(folder, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        if smooth:  # low-frequency colour blobs: closer to natural images than noise
            x = torch.rand(3, 4, 4, generator=g)[None]
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)[0]
            pixels = (x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        else:
            pixels = torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(os.path.join(folder, f"{i:03d}.png"))
    return str(folder)


def run_cli(args, env=None, script="evaluate.py"):
    full_env = dict(os.environ, **(env or {}))
    cmd = [sys.executable, script] if script.endswith(".py") else [sys.executable, "-m", script]
    return subprocess.run(cmd + list(args), cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def extractor():
    return inception.InceptionFeatures("random", "cpu", batch_size=16)


def test_building_the_extractor_leaves_the_global_rng_alone():
    """train.py builds it after restoring a checkpoint's RNG state: it must not shift the training noise."""
    state = torch.get_rng_state()
    inception.InceptionFeatures("random", "cpu")
    assert torch.equal(torch.get_rng_state(), state)


# ----------------------------------------------------------------------------- Inception plumbing

def test_fast_inception_equals_pytorch_fid_forward(extractor):
    import pytorch_fid.inception as pfi

    model = inception.pytorch_fid_inception("random")
    assert isinstance(model, pfi.InceptionV3) and not model.training
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        ref = model(x.float() / 255)[0].flatten(1).numpy()
    ours = extractor(x)
    assert ours.shape == (6, 2048) and ref.std() > 0.01
    assert np.abs(ours - ref).max() <= 1e-4 * np.abs(ref).max()


def test_identical_inputs_give_zero_fid(extractor):
    x = torch.randint(0, 256, (6, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    f1, f2 = extractor(x), extractor(x.clone())
    mu1, s1 = metrics.statistics(f1)
    mu2, s2 = metrics.statistics(f2)
    assert abs(metrics.frechet_distance(mu1, s1, mu2, s2)) < 1e-4 * np.trace(s1)
    y = torch.randint(0, 256, (6, 3, 32, 32), generator=torch.Generator().manual_seed(1), dtype=torch.uint8) // 2
    mu3, s3 = metrics.statistics(extractor(y))
    assert metrics.frechet_distance(mu3, s3, mu2, s2) > 0.1 * np.trace(s1)


# ----------------------------------------------------------------------------- runs, cache, CSV

def test_run_evaluation_caches_real_statistics_and_appends_rows(tmp_path, tiny_images, monkeypatch):
    run = make_run(str(tmp_path), "run", data_root=tiny_images)
    stats_dir, csv = str(tmp_path / "stats"), str(tmp_path / "fid.csv")
    args = [run, "--n", "6", "--real-n", "8", "--fid-weights", "random", "--stats-dir", stats_dir,
            "--csv", csv, "--kid-subset-size", "5", "--kid-subsets", "5", "--device", "cpu"]
    assert evaluate.main(args) == 0
    files = sorted(os.listdir(stats_dir))  # the real statistics and the FID floor
    assert len(files) == 2 and files[0].startswith("folder-") and "-floor-8-seed0" in files[0]
    assert files[0].endswith(".json") and files[1].startswith("folder-") and "-train-8-seed0" in files[1]
    with np.load(os.path.join(stats_dir, files[1])) as f:  # pytorch-fid reads f["mu"], f["sigma"]
        assert f["mu"].shape == (2048,) and f["sigma"].shape == (2048, 2048) and f["features"].shape == (8, 2048)
    first = pd.read_csv(csv)
    assert len(first) == 1
    row = first.iloc[0]
    assert list(first.columns[:21]) == ["run", "dataset", "loss", "p", "n_critic", "seed", "steps", "epochs",
                                        "n_fake", "n_real", "fid", "kid", "kid_std", "precision", "recall",
                                        "density", "coverage", "fid_floor", "fid_floor_test", "device", "seconds"]
    assert (row["dataset"], row["loss"], row["p"], row["n_critic"], row["seed"], row["steps"], row["n_fake"],
            row["n_real"]) == ("folder", "minkowski", 4.0, 1, 3, 7, 6, 8)
    assert row["fid"] > 0 and math.isfinite(row["kid"]) and row["status"] == "completed"
    assert all(0 <= row[m] for m in metrics.PRDC_COLUMNS)
    assert row["fid_floor"] > 0 and math.isnan(row["fid_floor_test"])  # no sibling test folder

    def no_loading(*a, **k):
        raise AssertionError("real images loaded again: the statistics cache was not used")
    monkeypatch.setattr(data, "load_images", no_loading)
    pd.concat([first, first.assign(run="other-run")]).to_csv(csv, index=False)  # another run's row
    assert evaluate.main(args) == 0
    second = pd.read_csv(csv)
    assert second["run"].tolist() == [row["run"], "other-run"]  # the re-evaluation replaced its own row only
    assert second["fid"].iloc[0] == pytest.approx(row["fid"], rel=1e-6)  # same noise seed


def test_fid_floor_is_real_against_other_real_images(tmp_path, extractor, monkeypatch):
    """fid_floor: the reference train images (the first n of the seeded draw) against the next n;
    fid_floor_test: against the first n of the sibling test folder; then cached (no image loaded)."""
    from PIL import Image
    g = torch.Generator().manual_seed(1)
    for split, n in (("train", 12), ("test", 7)):
        os.makedirs(tmp_path / "jpeg" / split / "c0")
        for i in range(n):
            pixels = torch.randint(0, 256, (32, 32, 3), generator=g, dtype=torch.uint8).numpy()
            Image.fromarray(pixels).save(tmp_path / "jpeg" / split / "c0" / f"{i}.png")
    train_root, stats_dir = str(tmp_path / "jpeg" / "train"), str(tmp_path / "stats")
    floor = inception.fid_floor(extractor, "folder", train_root, 5, 3, stats_dir)
    train, test = data.load_images("folder", train_root), data.load_images("folder", str(tmp_path / "jpeg" / "test"))
    order, test_order = torch.randperm(12, generator=torch.Generator().manual_seed(3)), \
        torch.randperm(7, generator=torch.Generator().manual_seed(3))
    stats = lambda images: metrics.statistics(extractor(images))  # noqa: E731
    reference = stats(train[order[:5]])
    other, held_out = stats(train[order[5:10]]), stats(test[test_order[:5]])
    assert floor["fid_floor"] == pytest.approx(metrics.frechet_distance(*other, *reference), rel=1e-6)
    assert floor["fid_floor_test"] == pytest.approx(metrics.frechet_distance(*held_out, *reference), rel=1e-6)
    mu, _, _ = inception.real_statistics(extractor, "folder", train_root, "train", 5, 3, stats_dir)
    assert np.allclose(mu, reference[0], rtol=1e-6)  # the floor's reference set is the one fakes are measured against
    monkeypatch.setattr(data, "load_images", lambda *a, **k: pytest.fail("images loaded again: the floor is cached"))
    assert inception.fid_floor(extractor, "folder", train_root, 5, 3, stats_dir) == floor
    monkeypatch.undo()
    too_few = inception.fid_floor(extractor, "folder", train_root, 7, 3, stats_dir)  # 14 > 12 train images
    assert math.isnan(too_few["fid_floor"]) and too_few["fid_floor_test"] > 0
    none = inception.fid_floor(extractor, "folder", train_root, 13, 3, stats_dir)  # no reference set: cached too
    monkeypatch.setattr(data, "load_images", lambda *a, **k: pytest.fail("images loaded again: the floor is cached"))
    assert all(math.isnan(v) for v in none.values())
    assert all(math.isnan(v) for v in inception.fid_floor(extractor, "folder", train_root, 13, 3, stats_dir).values())


def test_generated_samples_are_quantised_like_png(tmp_path, tiny_images):
    """The features of the run's samples equal those of the same samples saved as PNG and read back."""
    from PIL import Image
    run = make_run(str(tmp_path), "run", data_root=tiny_images)
    G, cfg, _ = evaluate.load_run(run)
    samples = evaluate.generate(G, cfg["z_dim"], 4, seed=0)
    import torchvision.utils as vutils
    for i in range(4):
        vutils.save_image(samples[i] * 0.5 + 0.5, tmp_path / f"{i}.png")
    png = torch.stack([torch.from_numpy(np.array(Image.open(tmp_path / f"{i}.png").convert("RGB"))).permute(2, 0, 1)
                       for i in range(4)])
    assert torch.equal(data.to_uint8(samples), png)


def test_toy_run_writes_toy_metrics(tmp_path):
    run = make_run(str(tmp_path), "toy", dataset="ring8", arch="mlp", width=16)
    csv = str(tmp_path / "toy.csv")
    assert evaluate.main([run, "--n", "500", "--csv", csv]) == 0
    df = pd.read_csv(csv)
    assert len(df) == 1 and df["n_fake"].iloc[0] == 500 and 0 <= df["modes"].iloc[0] <= 8
    assert {"hq_pct", "rkl", "seconds"} <= set(df.columns)


def test_training_evaluator_restores_mode(tmp_path, tiny_images):
    cfg = dict(dataset="folder", data_root=tiny_images, z_dim=16, eval_n=6, eval_every=5, fid_weights="random",
               fid_stats_dir=str(tmp_path / "stats"))
    G, _ = models.build("dcgan", 16, 8)
    ev = evaluate.TrainingEvaluator(cfg, "cpu")
    G.train()
    out = ev(G, 5)
    assert G.training and set(out) == {"step", "fid", "kid", "kid_std", *metrics.PRDC_COLUMNS, "fid_floor",
                                       "fid_floor_test", "fid_precision"} and out["fid"] > 0
    assert out["fid_precision"] == "float32"  # eval.csv's column: each FID says which Inception made it
    assert 0 <= out["coverage"] <= 1 and math.isnan(out["fid_floor"])  # a training run does not pay for the floor
    extractor = inception.InceptionFeatures("random")
    inception.fid_floor(extractor, "folder", tiny_images, 6, 0, cfg["fid_stats_dir"])  # as evaluate.py RUN_DIR does
    out = evaluate.TrainingEvaluator(cfg, "cpu")(G, 5)
    assert out["fid_floor"] > 0 and math.isnan(out["fid_floor_test"])  # read from the cache; no test folder
    G.eval()
    assert ev(G, 10)["fid"] == pytest.approx(out["fid"], rel=1e-6) and not G.training
    toy = evaluate.TrainingEvaluator(dict(dataset="grid25", z_dim=4, eval_n=100), "cpu")
    Gt, _ = models.build("mlp", 4, 16)
    Gt.train()
    m = toy(Gt, 1)
    assert Gt.training and set(m) == {"step", "modes", "hq_pct", "rkl"}


def test_more_real_images_than_there_are_is_refused_and_a_cache_of_fewer_is_not_trusted(tmp_path, tiny_images):
    """Observed: --eval-n 400 on 40 images was clamped without a word and the statistics of 40 cached
    as those of 400, which a later --real-n 400 reused, recording n_real 400 for 40 images."""
    run = make_run(str(tmp_path), "run", data_root=tiny_images)
    stats_dir, csv = str(tmp_path / "stats"), str(tmp_path / "fid.csv")
    cfg = dict(dataset="folder", data_root=tiny_images, z_dim=16, eval_n=400, eval_every=5, fid_weights="random",
               fid_stats_dir=stats_dir)
    with pytest.raises(evaluate.UserError, match="^--eval-n 400 is more than the 40 images of folder"):
        evaluate.TrainingEvaluator(cfg, "cpu")
    assert not os.path.exists(stats_dir)
    extractor = inception.InceptionFeatures("random")
    features = extractor(data.load_images("folder", tiny_images))  # what the clamped evaluator cached
    wrong = inception.stats_path(stats_dir, "folder", tiny_images, "train", 400, 0, extractor.weights_tag)
    inception.save_stats(wrong, *metrics.statistics(features), features)
    args = [run, "--n", "6", "--real-n", "400", "--fid-weights", "random", "--stats-dir", stats_dir, "--csv", csv,
            "--device", "cpu"]
    with pytest.raises(evaluate.UserError, match="^--real-n 400 is more than the 40 images of folder .*--real-n 40 "):
        evaluate.main(args)
    assert not os.path.exists(csv)


def test_fid_precision_is_recorded_beside_each_fid_and_caches_apart(tmp_path, tiny_images):
    """--fid-precision bfloat16: its rows say so (float32's cell stays empty, as in the rows from before
    the flag), its real statistics go to a cache file of their own, and float32's keeps today's name."""
    run = make_run(str(tmp_path), "run", data_root=tiny_images)
    stats_dir, csv = str(tmp_path / "stats"), str(tmp_path / "fid.csv")
    args = [run, "--n", "6", "--real-n", "8", "--fid-weights", "random", "--stats-dir", stats_dir,
            "--csv", csv, "--kid-subset-size", "5", "--kid-subsets", "5", "--device", "cpu"]
    assert evaluate.main(args) == 0
    assert evaluate.main([*args, "--fid-precision", "bfloat16"]) == 0
    rows = pd.read_csv(csv)
    assert len(rows) == 2 and pd.isna(rows["fid_precision"].iloc[0]) and rows["fid_precision"].iloc[1] == "bfloat16"
    assert rows["train_precision"].isna().all()  # the run's config predates --precision: float32
    assert rows["fid"].iloc[1] == pytest.approx(rows["fid"].iloc[0], rel=0.2) and rows["fid"].iloc[1] != rows["fid"].iloc[0]
    names = sorted(os.listdir(stats_dir))
    assert [n.split("-", 2)[2] for n in names] == ["floor-8-seed0-wrandom-bfloat16.json", "floor-8-seed0-wrandom.json",
                                                   "train-8-seed0-wrandom-bfloat16.npz", "train-8-seed0-wrandom.npz"]
    cfg = dict(dataset="folder", data_root=tiny_images, z_dim=16, eval_n=6, eval_every=5, fid_weights="random",
               fid_stats_dir=stats_dir, fid_precision="bfloat16")
    G, _ = models.build("dcgan", 16, 8)
    assert evaluate.TrainingEvaluator(cfg, "cpu")(G, 5)["fid_precision"] == "bfloat16"  # eval.csv's cell


def test_tables_use_float32_fids_only_and_say_what_they_left_out(tmp_path, capsys):
    row = dict(dataset="folder", loss="gan", p=None, n_critic=1, arch="dcgan", clip=0.01, clip_params="all", steps=5,
               epochs=1, n_fake=10, n_real=10, device="cpu", checkpoint="checkpoints/last.pt", real_split="train")
    pd.DataFrame([dict(row, run="r0", seed=0, fid=100.0), dict(row, run="r1", seed=1, fid=50.0, fid_precision="bfloat16"),
                  dict(row, run="r2", seed=2, fid=10.0, train_precision="bfloat16")]).to_csv(tmp_path / "fid.csv",
                                                                                             index=False)
    assert evaluate.main(["--table", "--csv", str(tmp_path / "fid.csv")]) == 0
    out = capsys.readouterr().out
    assert out.count("2 row(s) of") == 1 and "trained or evaluated in bfloat16 left out of the tables" in out
    gan = pd.read_csv(tmp_path / "table2.csv").set_index("loss").loc["gan"]
    assert (gan["fid_mean"], gan["seeds"]) == (100.0, 1)


# ----------------------------------------------------------------------------- tables

def test_build_tables_puts_paper_beside_ours():
    rows = [dict(run=f"r{i}", dataset="cifar10", loss=l, p=p, seed=s, steps=100, epochs=1.0, n_fake=5000,
                 n_real=5000, fid=f, kid=0.1, kid_std=0.01, device="cpu")
            for i, (l, p, s, f) in enumerate([("gan", 4.0, 0, 100.0), ("gan", 4.0, 1, 110.0),
                                              ("minkowski", 4.0, 0, 90.0), ("minkowski", 2.0, 0, 120.0),
                                              ("hinge", 4.0, 0, 80.0)])]
    rows.append(dict(rows[0], fid=300.0))  # a re-evaluation of run r0 replaces the older row
    t2, t3 = eval_tables.build_tables(rows)
    assert list(t2["loss"]) == list(paper.TABLE2_LOSSES)
    gan = t2[t2["loss"] == "gan"].iloc[0]
    assert gan["paper_fid"] == 197.8 and gan["fid_mean"] == 205.0 and gan["seeds"] == 2
    assert gan["fid_std"] == pytest.approx(np.std([300.0, 110.0], ddof=1))
    mink = t2[t2["loss"] == "minkowski"].iloc[0]
    assert mink["paper_fid"] == 99.6 and mink["fid_mean"] == 90.0 and mink["p"] == 4
    assert t2[t2["loss"] == "hinge"].iloc[0]["fid_mean"] == 80.0
    assert math.isnan(t2[t2["loss"] == "hinge"].iloc[0]["paper_fid"])
    assert math.isnan(t2[t2["loss"] == "wgan"].iloc[0]["fid_mean"])
    assert list(t3["p"]) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert list(t3["paper_fid"]) == [128.4, 123.6, 105.8, 99.6, 108.5, 114.8, 137.4, 149.6]
    assert t3.set_index("p").loc[2, "fid_mean"] == 120.0 and t3.set_index("p").loc[4, "n_fake"] == "5000"


def test_one_run_under_two_spellings_is_one_seed_and_a_seed_listed_twice_is_refused(tmp_path, monkeypatch):
    """Observed: evaluate.py c1, then evaluate.py /abs/path/c1, made --table report 2 seeds with SD 0."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c1").mkdir()

    def row(run, seed, fid):
        return dict(run=run, dataset="cifar10", loss="gan", seed=seed, steps=100, epochs=1.0, n_fake=5000,
                    n_real=5000, fid=fid, device="cpu")
    rows = [row("c1", 0, 100.0), row(str(tmp_path / "c1"), 0, 101.0), row("c2", 1, 120.0)]
    gan = eval_tables.build_tables(rows)[0].set_index("loss").loc["gan"]
    assert (gan["seeds"], gan["fid_mean"]) == (2, 110.5)  # c1's later evaluation, and c2
    with pytest.raises(evaluate.UserError, match=r"gan seed 0 has two rows at one budget \(c1, other/c1\): a run counts once"):
        eval_tables.build_tables([row("c1", 0, 100.0), row("other/c1", 0, 101.0)])


def test_a_run_evaluated_under_another_spelling_replaces_its_row_in_the_csv(tmp_path, monkeypatch):
    """Observed: evaluate.py c1, then evaluate.py /abs/path/c1, left two rows of one checkpoint in fid.csv."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c1").mkdir()
    (tmp_path / "c2").mkdir()

    def row(run, fid):
        return dict(run=run, dataset="cifar10", loss="gan", seed=0, steps=100, epochs=1.0, n_fake=5000, n_real=5000,
                    fid=fid, device="cpu", checkpoint="last.pt", status="completed", real_split="train")
    csv = tmp_path / "fid.csv"
    evaluate.append_rows(str(csv), [row("c1", 100.0), row("c2", 120.0)], evaluate.FID_COLUMNS)
    evaluate.append_rows(str(csv), [row(str(tmp_path / "c1"), 101.0), row(str(tmp_path / "c3"), 130.0)],
                         evaluate.FID_COLUMNS)
    table = pd.read_csv(csv)
    assert list(table["run"]) == ["c1", "c2", str(tmp_path / "c3")]  # c1 keeps the file's spelling, c3 its own
    assert list(table["fid"]) == [101.0, 120.0, 130.0]


def test_a_run_name_trained_again_at_another_budget_is_another_run_of_the_table():
    """Observed: collecting 2-epoch runs into results/ dropped the 1-epoch runs of the same names
    (minkowski-p4-seed0) from the 1-epoch row of Table 3, whose seeds fell from 4 to 3."""
    def row(seed, steps, fid, n=2000):
        return dict(run=f"folder/minkowski-p4-seed{seed}", dataset="folder", loss="minkowski", p=4.0, seed=seed,
                    steps=steps, epochs=steps / 781, n_fake=n, n_real=n, fid=fid, device="cpu")
    rows = [row(0, 781, 100.0), row(1, 781, 110.0), row(0, 1562, 50.0, n=5000)]
    t3 = eval_tables.build_tables(rows)[1].dropna(subset=["fid_mean"]).set_index("steps")
    assert (t3.loc["781", "seeds"], t3.loc["781", "fid_mean"]) == (2, 105.0)
    assert (t3.loc["1562", "seeds"], t3.loc["1562", "fid_mean"]) == (1, 50.0)


def test_table_cli_writes_csvs(tmp_path):
    csv = tmp_path / "fid.csv"
    pd.DataFrame([dict(run="a", dataset="cifar10", loss="wgan", p=4.0, seed=0, steps=5, epochs=1, n_fake=10,
                       n_real=10, fid=50.0, kid=0.0, kid_std=0.0, device="cpu")]).to_csv(csv, index=False)
    assert evaluate.main(["--table", "--csv", str(csv), "--table-dir", str(tmp_path)]) == 0
    t2 = pd.read_csv(tmp_path / "table2.csv")
    assert t2.set_index("loss").loc["wgan", "fid_mean"] == 50.0
    assert t2.set_index("loss").loc["wgan", "paper_fid"] == 210.3
    assert len(pd.read_csv(tmp_path / "table3.csv")) == 8


def test_table_cli_merges_into_the_tables_there(tmp_path):
    """Rows of another budget are kept, the paper-only row of a measured (loss, p) goes, and a table
    without our FID for a (loss, p) never replaces a measured row."""
    csv = tmp_path / "fid.csv"
    row = dict(run="a", dataset="cifar10", loss="wgan", p=4.0, seed=0, steps=5, epochs=1, n_fake=10, n_real=10,
               fid=50.0, kid=0.0, kid_std=0.0, device="cpu")
    pd.DataFrame([row]).to_csv(csv, index=False)
    assert evaluate.main(["--table", "--csv", str(csv), "--table-dir", str(tmp_path)]) == 0
    pd.DataFrame([dict(row, run="b", loss="gan", steps=9, fid=70.0)]).to_csv(csv, index=False)
    assert evaluate.main(["--table", "--csv", str(csv), "--table-dir", str(tmp_path)]) == 0
    t2 = pd.read_csv(tmp_path / "table2.csv")
    assert t2.set_index("loss").loc["wgan", "fid_mean"] == 50.0 and t2.set_index("loss").loc["gan", "fid_mean"] == 70.0
    assert t2["loss"].tolist() == list(paper.TABLE2_LOSSES)  # one row each: the paper-only ones went


# ----------------------------------------------------------------------------- generic mode vs pytorch-fid

def parse_fid(stdout):
    return float(re.search(r"FID:\s+(\S+)", stdout).group(1))


def compare_with_pytorch_fid(a, b, env):
    ours = run_cli(["--fake", a, "--real", b, "--device", "cpu"], env=env)
    assert ours.returncode == 0, ours.stderr
    theirs = run_cli([a, b, "--device", "cpu", "--num-workers", "0"], env=env, script="pytorch_fid")
    assert theirs.returncode == 0, theirs.stderr
    return parse_fid(ours.stdout), parse_fid(theirs.stdout)


def test_generic_mode_equals_pytorch_fid_pipeline_random_weights(tmp_path, capsys):
    """`--fake A --real B` against pytorch-fid's own file reading, network and statistics, with the
    same random weights (the subprocess `python -m pytorch_fid` comparison needs the real ones)."""
    import pytorch_fid.fid_score as fs

    weights = inception.random_fid_weights(seed=1)
    path = tmp_path / "w.pth"
    torch.save(weights, path)
    a = save_pngs(tmp_path / "a", 8, seed=0)
    b = save_pngs(tmp_path / "b", 8, seed=1, smooth=True)
    with inception._patched_loader(weights) as (pfi, _):
        model = pfi.InceptionV3([3])  # what calculate_fid_given_paths builds
    mu_a, s_a = fs.compute_statistics_of_path(a, model, 50, 2048, "cpu", 0)
    mu_b, s_b = fs.compute_statistics_of_path(b, model, 50, 2048, "cpu", 0)
    theirs = metrics.frechet_distance(mu_a, s_a, mu_b, s_b)  # == pytorch-fid's: tested above
    assert evaluate.main(["--fake", a, "--real", b, "--fid-weights", str(path), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    ours = parse_fid(out)
    assert ours > 1.0 and ours == pytest.approx(theirs, rel=1e-4)
    for name in ("KID", "Precision", "Recall", "Density", "Coverage"):  # from the features of both folders
        assert re.search(rf"^{name}: \S+", out, re.M), out
    np.savez(tmp_path / "b.npz", mu=mu_b, sigma=s_b)  # pytorch-fid's --save-stats format
    assert evaluate.main(["--fake", a, "--real", str(tmp_path / "b.npz"), "--fid-weights", str(path)]) == 0
    assert parse_fid(capsys.readouterr().out) == pytest.approx(theirs, rel=1e-4)


@pytest.mark.skipif(not os.path.isfile(REAL_WEIGHTS), reason="FID Inception weights not in torch hub's cache")
def test_generic_mode_equals_python_m_pytorch_fid_real_weights(tmp_path):
    a = save_pngs(tmp_path / "a", 16, seed=0, smooth=True)
    b = save_pngs(tmp_path / "b", 16, seed=1, smooth=True)
    ours, theirs = compare_with_pytorch_fid(a, b, {})
    assert ours > 1.0
    assert ours == pytest.approx(theirs, rel=1e-4)


# ----------------------------------------------------------------------------- bad input

def assert_user_error(result, *words):
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("bad_runs"))
    return {"none": make_run(root, "empty", checkpoint=False), "corrupt": make_run(root, "corrupt", corrupt=True),
            "mnist": make_run(root, "mnist", dataset="mnist"), "ok": make_run(root, "ok", data_root=root)}


@pytest.mark.parametrize("case,words", [
    ("missing", ["does not exist"]), ("none", ["no checkpoint"]), ("corrupt", ["unreadable"]),
    ("n1", ["--n"]), ("mnist", ["unknown dataset"]), ("noweights", ["pt_inception", "--fid-weights"]),
    ("weightspath", ["/nonexistent/w.pth"]), ("device", ["--device"]), ("realn", ["--real-n"]),
    ("cuda7", ["--device cuda:7"]),
])
def test_bad_input_is_one_line_exit_2(case, words, bad_runs, tmp_path):
    env = {}
    args = {"missing": [str(tmp_path / "no_such_run")], "none": [bad_runs["none"]], "corrupt": [bad_runs["corrupt"]],
            "n1": [bad_runs["ok"], "--n", "1"], "mnist": [bad_runs["mnist"]],
            "weightspath": [bad_runs["ok"], "--fid-weights", "/nonexistent/w.pth"],
            "noweights": [bad_runs["ok"], "--n", "4"], "device": [bad_runs["ok"], "--device", "foo"],
            "realn": [bad_runs["ok"], "--real-n", "many"], "cuda7": [bad_runs["ok"], "--device", "cuda:7"]}[case]
    if case == "noweights":  # an empty hub cache and no way out: must not hang or download
        env = {"TORCH_HOME": str(tmp_path / "empty"), "https_proxy": "http://127.0.0.1:9",
               "HTTPS_PROXY": "http://127.0.0.1:9"}
    args += ["--csv", str(tmp_path / "fid.csv"), "--stats-dir", str(tmp_path / "stats")]
    result = run_cli(args, env=env)
    assert_user_error(result, *words)
    assert not os.path.exists(tmp_path / "fid.csv")


def test_no_tf32_uses_the_new_precision_api_and_restores_it():
    """Once anything set fp32_precision, the legacy allow_tf32 flags raise: _no_tf32 must not touch them."""
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    saved = conv.fp32_precision, matmul.fp32_precision
    try:
        conv.fp32_precision = matmul.fp32_precision = "tf32"
        with inception._no_tf32():
            assert (conv.fp32_precision, matmul.fp32_precision) == ("ieee", "ieee")
        assert (conv.fp32_precision, matmul.fp32_precision) == ("tf32", "tf32")
    finally:
        conv.fp32_precision, matmul.fp32_precision = saved


def test_eight_processes_appending_to_one_csv_lose_no_row(tmp_path):
    """Observed: 8 evaluate.py processes writing 3 runs each to one --csv left 21 of 24 rows (a
    read-modify-write race). Each process here merges its rows one at a time, all starting at once."""
    csv, start = tmp_path / "fid.csv", time.time() + 15  # every process has imported by then
    code = ("import sys, time\nfrom minkgan import evaluation as evaluate\n"
            "k, csv, start = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])\n"
            "time.sleep(max(0, start - time.time()))\n"
            "for i in range(5):\n"
            "    evaluate.append_rows(csv, [dict(run=f'run{k}-{i}', checkpoint='last.pt', steps=1, n_fake=2, fid=1.0,"
            " status='completed')], evaluate.FID_COLUMNS)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(k), str(csv), str(start)], cwd=ROOT) for k in range(8)]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    assert sorted(pd.read_csv(csv)["run"]) == sorted(f"run{k}-{i}" for k in range(8) for i in range(5))


def test_a_truncated_checkpoint_gives_advice_evaluate_can_follow(bad_runs, tmp_path):
    """Observed: evaluate.py on a truncated checkpoint said "pass --overwrite", a flag it does not have."""
    result = run_cli([bad_runs["corrupt"], "--csv", str(tmp_path / "fid.csv")])
    assert_user_error(result, "unreadable", "--checkpoint")
    assert "--overwrite" not in result.stderr


def test_a_corrupt_image_in_fake_is_a_one_line_error(tmp_path):
    """Observed: evaluate.py --fake on a folder with a corrupt PNG ended in PIL.UnidentifiedImageError."""
    fake = tmp_path / "fake"
    save_pngs(fake, 3, seed=0)
    (fake / "broken.png").write_bytes(b"not a png")
    np.savez(tmp_path / "real.npz", mu=np.zeros(2048), sigma=np.eye(2048))
    assert_user_error(run_cli(["--fake", str(fake), "--real", str(tmp_path / "real.npz"), "--fid-weights", "random"]),
                      "broken.png")


def test_statistics_holding_nan_are_a_one_line_error(tmp_path):
    """Observed: an .npz whose sigma holds NaN ended in numpy's LinAlgError."""
    sigma = np.eye(4)
    sigma[1, 2] = np.nan
    np.savez(tmp_path / "a.npz", mu=np.zeros(4), sigma=sigma)
    np.savez(tmp_path / "b.npz", mu=np.zeros(4), sigma=np.eye(4))
    assert_user_error(run_cli(["--fake", str(tmp_path / "a.npz"), "--real", str(tmp_path / "b.npz")]), "NaN", "a.npz")


def test_the_default_csv_is_beside_the_run_and_never_in_the_committed_results(tmp_path, monkeypatch, capsys):
    """Observed: for runs/myrun the default CSV was two levels up, the committed results/toy_metrics.csv,
    and for myrun a results/ outside the repository."""
    repo = tmp_path / "repo"
    monkeypatch.setattr(evaluate.paths, "RESULTS", str(repo / "results"))
    monkeypatch.chdir(repo.mkdir() or repo)
    assert evaluate.results_beside("runs/ring8/run") == str(repo / "runs" / "results")  # a sweep's layout
    assert evaluate.results_beside("runs/myrun") == str(repo / "runs" / "results")
    assert evaluate.results_beside(str(tmp_path / "myrun")) == str(tmp_path / "results")
    committed = make_run(str(repo / "results" / "run_logs" / "ring8-100steps"), "toy", dataset="ring8", arch="mlp",
                         width=16)
    (repo / "results" / "toy_metrics.csv").write_text("run,checkpoint,steps,n_fake\n")
    for run in (committed, "myrun"):
        make_run(str(repo), "myrun", dataset="ring8", arch="mlp", width=16)
        with pytest.raises(evaluate.UserError, match="repository's committed results.*name the file with --csv"):
            evaluate.main([run, "--n", "500"])
    assert (repo / "results" / "toy_metrics.csv").read_text() == "run,checkpoint,steps,n_fake\n"
    assert evaluate.main(["myrun", "--n", "500", "--csv", str(repo / "results" / "toy_metrics.csv")]) == 0  # named


def test_rows_and_tables_go_beside_the_runs_unless_named(tmp_path, monkeypatch):
    """Observed: evaluate.py wrote into the repository's results/ by default, where the committed
    tables are."""
    monkeypatch.chdir(tmp_path)  # the working directory gets nothing
    run = make_run(str(tmp_path / "runs" / "ring8"), "toy", dataset="ring8", arch="mlp", width=16)
    assert evaluate.main([run, "--n", "500"]) == 0
    assert os.path.isfile(tmp_path / "runs" / "results" / "toy_metrics.csv")
    assert os.listdir(tmp_path) == ["runs"]
    csv = tmp_path / "mine" / "fid.csv"
    csv.parent.mkdir()
    pd.DataFrame([dict(run="a", dataset="cifar10", loss="gan", p=None, seed=0, steps=5, epochs=1, n_fake=10,
                       n_real=10, fid=50.0, kid=0.0, kid_std=0.0, device="cpu")]).to_csv(csv, index=False)
    assert evaluate.main(["--table", "--csv", str(csv)]) == 0
    assert sorted(os.listdir(csv.parent)) == ["fid.csv", "table2.csv", "table3.csv"]


def test_tables_without_a_csv_to_read_are_a_one_line_error():
    result = run_cli(["--table"])
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0 and "--csv" in result.stderr


def test_every_measured_table_row_says_how_its_budget_differs_from_the_papers():
    def row(**kw):
        return {"loss": "gan", "p": None, "n_critic": 1, "dataset": "cifar10", "seed": 0, "steps": 156250,
                "epochs": 200.0, "n_fake": 5000, "n_real": 5000, "fid": 50.0, "kid": 0.0, "kid_std": 0.0,
                "device": "cpu", **kw}
    paper = eval_tables.build_tables([row()])[0].set_index("loss")
    assert paper.loc["gan", "note"] == "the paper's protocol"
    assert paper.loc["hinge", "note"] == "not measured at any budget yet"
    reduced = eval_tables.build_tables([row(dataset="folder", epochs=1.0, steps=781, n_fake=2000, n_real=2000)])[0]
    note = reduced.set_index("loss").loc["gan", "note"]
    assert note.startswith("reduced budget, not the paper's protocol: ") and "1.0 epochs (paper 200)" in note
    assert "2000 generated samples (paper 5000)" in note and "folder images" in note


def test_the_real_statistics_cache_is_outside_the_checkout_and_follows_mink_gan_cache(tmp_path):
    """It was results/fid_stats, relative to the working folder: run from elsewhere, it made a results/ there."""
    code = "from minkgan import inception, ops; print(inception.DEFAULT_STATS_DIR); print(ops.cache_root())"
    env = {k: v for k, v in os.environ.items() if k not in ("MINK_GAN_CACHE", "MINK_OPS_CACHE")}
    default = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                             check=True).stdout.split()
    assert default == [os.path.expanduser("~/.cache/mink-gan/fid_stats"), os.path.expanduser("~/.cache/mink-gan/ops")]
    moved = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "MINK_GAN_CACHE": str(tmp_path)},
                           capture_output=True, text=True, check=True).stdout.split()
    assert moved == [str(tmp_path / "fid_stats"), str(tmp_path / "ops")]
