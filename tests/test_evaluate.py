"""evaluate.py: Frechet distance, KID, toy metrics, Inception plumbing (random weights), run
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
import torch

import data
import evaluate
import models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_WEIGHTS = os.path.join(os.path.expanduser("~"), ".cache", "torch", "hub", "checkpoints",
                            evaluate.FID_WEIGHTS_NAME)


# ----------------------------------------------------------------------------- helpers

def random_cov(rng, d, n):
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) / math.sqrt(d) + rng.normal(size=d)
    return evaluate.statistics(x)


def sqrtm_fid(mu1, s1, mu2, s2):
    """The textbook formula with scipy's sqrtm (pytorch-fid's, without its fallbacks)."""
    from scipy import linalg
    covmean = linalg.sqrtm(s1 @ s2).real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


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
    return evaluate.InceptionFeatures("random", "cpu", batch_size=16)


def test_building_the_extractor_leaves_the_global_rng_alone():
    """train.py builds it after restoring a checkpoint's RNG state: it must not shift the training noise."""
    state = torch.get_rng_state()
    evaluate.InceptionFeatures("random", "cpu")
    assert torch.equal(torch.get_rng_state(), state)


# ----------------------------------------------------------------------------- Frechet distance, KID

@pytest.mark.parametrize("d,n", [(16, 200), (128, 1000), (128, 60)])  # last: singular covariances
def test_frechet_distance_matches_pytorch_fid(d, n):
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(d + n)
    mu1, s1 = random_cov(rng, d, n)
    mu2, s2 = random_cov(rng, d, n)
    ours = evaluate.frechet_distance(mu1, s1, mu2, s2)
    theirs = calculate_frechet_distance(mu1, s1, mu2, s2)
    assert ours > 1.0
    assert ours == pytest.approx(theirs, rel=1e-6)
    assert ours == pytest.approx(sqrtm_fid(mu1, s1, mu2, s2), rel=1e-6)


def test_frechet_distance_of_equal_and_shifted_gaussians():
    rng = np.random.default_rng(1)
    mu, s = random_cov(rng, 64, 500)
    assert abs(evaluate.frechet_distance(mu, s, mu, s)) < 1e-8 * np.trace(s)
    shift = np.full(64, 0.5)
    assert evaluate.frechet_distance(mu + shift, s, mu, s) == pytest.approx(64 * 0.25, rel=1e-6)
    # N(0, a I) vs N(0, b I): d (sqrt a - sqrt b)^2
    assert evaluate.frechet_distance(np.zeros(8), 4 * np.eye(8), np.zeros(8), np.eye(8)) == pytest.approx(8.0)


def test_kid_matches_direct_formula():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 10)).astype(np.float32)
    y = (rng.normal(size=(30, 10)) + 0.3).astype(np.float32)
    # one subset holding every sample of the smaller set is a fixed number: check it by the formula
    k, std = evaluate.kid(x[:30], y, n_subsets=1, subset_size=30)
    kern = lambda a, b: (a.astype(np.float64) @ b.astype(np.float64).T / 10 + 1) ** 3
    kxx, kyy, kxy = kern(x[:30], x[:30]), kern(y, y), kern(x[:30], y)
    m = 30
    expected = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                - 2 * kxy.mean())
    assert k == pytest.approx(expected, rel=1e-5)
    assert std == 0.0
    # same distribution: near 0 and below the shifted one
    same, _ = evaluate.kid(x, rng.normal(size=(40, 10)).astype(np.float32), n_subsets=20, subset_size=20)
    shifted, shifted_std = evaluate.kid(x, x + 1.0, n_subsets=20, subset_size=20)
    assert abs(same) < shifted / 5 and shifted > 0 and shifted_std > 0


# ----------------------------------------------------------------------------- toy metrics

def points_on(name, counts, offset=0.0):
    centres, std = data.toy_mixture(name)
    pts = [centres[k].repeat(c, 1) + offset * std for k, c in counts.items()]
    return torch.cat(pts)


def test_toy_three_of_eight_modes_equal_shares():
    x = points_on("ring8", {0: 100, 3: 100, 5: 100})
    centres, std = data.toy_mixture("ring8")
    m = evaluate.toy_metrics(x, centres, std)
    assert m["modes"] == 3 and m["hq_pct"] == 100.0
    assert m["rkl"] == pytest.approx(math.log(8 / 3))


def test_toy_unequal_shares_and_outliers():
    centres, std = data.toy_mixture("grid25")
    on = points_on("grid25", {0: 200, 7: 100, 24: 100}, offset=2.9)  # 2.9 std along both axes: 4.1 std away
    near = points_on("grid25", {12: 100}) + torch.tensor([2.9 * std, 0.0])  # 2.9 std: high quality
    far = torch.full((100, 2), 1.0)  # between modes: 1.41 from the nearest, i.e. 28 std
    m = evaluate.toy_metrics(torch.cat([on, near, far]), centres, std)
    assert m["modes"] == 1 and m["hq_pct"] == pytest.approx(100 * 100 / 600)
    assert m["rkl"] == pytest.approx(math.log(25))
    on = points_on("grid25", {0: 200, 7: 100, 24: 100})
    m = evaluate.toy_metrics(on, centres, std)
    q = np.array([0.5, 0.25, 0.25])
    assert m["modes"] == 3 and m["rkl"] == pytest.approx(float((q * np.log(q * 25)).sum()))


def test_toy_uniform_and_far_away():
    centres, std = data.toy_mixture("ring8")
    x = data.sample_toy("ring8", 8000, torch.Generator().manual_seed(0))
    m = evaluate.toy_metrics(x, centres, std)
    # 2-D Gaussian noise: P(|noise| <= 3 std) = 1 - exp(-9/2) = 98.89%
    assert m["modes"] == 8 and m["hq_pct"] == pytest.approx(100 * (1 - math.exp(-4.5)), abs=0.4)
    assert 0 <= m["rkl"] < 0.01
    m = evaluate.toy_metrics(torch.full((50, 2), 10.0), centres, std)
    assert m["modes"] == 0 and m["hq_pct"] == 0 and math.isnan(m["rkl"])


# ----------------------------------------------------------------------------- Inception plumbing

def test_fast_inception_equals_pytorch_fid_forward(extractor):
    import pytorch_fid.inception as pfi

    model = evaluate.pytorch_fid_inception("random")
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
    mu1, s1 = evaluate.statistics(f1)
    mu2, s2 = evaluate.statistics(f2)
    assert abs(evaluate.frechet_distance(mu1, s1, mu2, s2)) < 1e-4 * np.trace(s1)
    y = torch.randint(0, 256, (6, 3, 32, 32), generator=torch.Generator().manual_seed(1), dtype=torch.uint8) // 2
    mu3, s3 = evaluate.statistics(extractor(y))
    assert evaluate.frechet_distance(mu3, s3, mu2, s2) > 0.1 * np.trace(s1)


# ----------------------------------------------------------------------------- runs, cache, CSV

def test_run_evaluation_caches_real_statistics_and_appends_rows(tmp_path, tiny_images, monkeypatch):
    run = make_run(str(tmp_path), "run", data_root=tiny_images)
    stats_dir, csv = str(tmp_path / "stats"), str(tmp_path / "fid.csv")
    args = [run, "--n", "6", "--real-n", "8", "--fid-weights", "random", "--stats-dir", stats_dir,
            "--csv", csv, "--kid-subset-size", "5", "--kid-subsets", "5", "--device", "cpu"]
    assert evaluate.main(args) == 0
    files = os.listdir(stats_dir)
    assert len(files) == 1 and files[0].startswith("folder-") and "-train-8-seed0" in files[0]
    with np.load(os.path.join(stats_dir, files[0])) as f:  # pytorch-fid reads f["mu"], f["sigma"]
        assert f["mu"].shape == (2048,) and f["sigma"].shape == (2048, 2048) and f["features"].shape == (8, 2048)
    first = pd.read_csv(csv)
    assert len(first) == 1
    row = first.iloc[0]
    assert list(first.columns[:14]) == ["run", "dataset", "loss", "p", "seed", "steps", "epochs", "n_fake",
                                        "n_real", "fid", "kid", "kid_std", "device", "seconds"]
    assert (row["dataset"], row["loss"], row["p"], row["seed"], row["steps"], row["n_fake"], row["n_real"]) == \
        ("folder", "minkowski", 4.0, 3, 7, 6, 8)
    assert row["fid"] > 0 and math.isfinite(row["kid"]) and row["status"] == "completed"

    def no_loading(*a, **k):
        raise AssertionError("real images loaded again: the statistics cache was not used")
    monkeypatch.setattr(data, "load_images", no_loading)
    pd.concat([first, first.assign(run="other-run")]).to_csv(csv, index=False)  # another run's row
    assert evaluate.main(args) == 0
    second = pd.read_csv(csv)
    assert second["run"].tolist() == [row["run"], "other-run"]  # the re-evaluation replaced its own row only
    assert second["fid"].iloc[0] == pytest.approx(row["fid"], rel=1e-6)  # same noise seed


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
    assert G.training and set(out) == {"step", "fid", "kid", "kid_std"} and out["fid"] > 0
    G.eval()
    assert ev(G, 10)["fid"] == pytest.approx(out["fid"], rel=1e-6) and not G.training
    toy = evaluate.TrainingEvaluator(dict(dataset="grid25", z_dim=4, eval_n=100), "cpu")
    Gt, _ = models.build("mlp", 4, 16)
    Gt.train()
    m = toy(Gt, 1)
    assert Gt.training and set(m) == {"step", "modes", "hq_pct", "rkl"}


# ----------------------------------------------------------------------------- tables

def test_build_tables_puts_paper_beside_ours():
    rows = [dict(run=f"r{i}", dataset="cifar10", loss=l, p=p, seed=s, steps=100, epochs=1.0, n_fake=5000,
                 n_real=5000, fid=f, kid=0.1, kid_std=0.01, device="cpu")
            for i, (l, p, s, f) in enumerate([("gan", 4.0, 0, 100.0), ("gan", 4.0, 1, 110.0),
                                              ("minkowski", 4.0, 0, 90.0), ("minkowski", 2.0, 0, 120.0),
                                              ("hinge", 4.0, 0, 80.0)])]
    rows.append(dict(rows[0], fid=300.0))  # a re-evaluation of run r0 replaces the older row
    t2, t3 = evaluate.build_tables(rows)
    assert list(t2["loss"]) == list(evaluate.TABLE2_LOSSES)
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
    assert t2["loss"].tolist() == list(evaluate.TABLE2_LOSSES)  # one row each: the paper-only ones went


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

    weights = evaluate.random_fid_weights(seed=1)
    path = tmp_path / "w.pth"
    torch.save(weights, path)
    a = save_pngs(tmp_path / "a", 8, seed=0)
    b = save_pngs(tmp_path / "b", 8, seed=1, smooth=True)
    with evaluate._patched_loader(weights) as (pfi, _):
        model = pfi.InceptionV3([3])  # what calculate_fid_given_paths builds
    mu_a, s_a = fs.compute_statistics_of_path(a, model, 50, 2048, "cpu", 0)
    mu_b, s_b = fs.compute_statistics_of_path(b, model, 50, 2048, "cpu", 0)
    theirs = evaluate.frechet_distance(mu_a, s_a, mu_b, s_b)  # == pytorch-fid's: tested above
    assert evaluate.main(["--fake", a, "--real", b, "--fid-weights", str(path), "--device", "cpu"]) == 0
    ours = parse_fid(capsys.readouterr().out)
    assert ours > 1.0 and ours == pytest.approx(theirs, rel=1e-4)
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


def test_eight_processes_appending_to_one_csv_lose_no_row(tmp_path):
    """Observed: 8 evaluate.py processes writing 3 runs each to one --csv left 21 of 24 rows (a
    read-modify-write race). Each process here merges its rows one at a time, all starting at once."""
    csv, start = tmp_path / "fid.csv", time.time() + 15  # every process has imported by then
    code = ("import sys, time, evaluate\n"
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
