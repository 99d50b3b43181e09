"""analysis/moments.py on a short 2-D run and on a short image run (random Inception weights): rows per space,
and the gaps are metrics.moment_gaps of the samples evaluate.py draws."""

import pandas as pd
import pytest
import torch

from minkgan import data
from minkgan import evaluation as evaluate
from analysis import moments
from minkgan import training as train
from minkgan.utils import run_main


def test_moment_rows_of_a_toy_run_are_the_gaps_of_its_evaluation_samples(tmp_path):
    out = str(tmp_path / "run")
    with pytest.raises(SystemExit):
        run_main(lambda: train.main(["--dataset", "ring8", "--loss", "gan", "--steps", "20", "--out", out]))
    csv = tmp_path / "moments.csv"
    assert moments.main([out, "--n", "500", "--csv", str(csv)]) == 0
    rows = pd.read_csv(csv).set_index("space")
    G, cfg, _ = evaluate.load_run(out)
    fake = evaluate.generate(G, cfg["z_dim"], 500, seed=evaluate.EVAL_NOISE_SEED).numpy()
    real = data.sample_toy("ring8", 500, torch.Generator().manual_seed(0)).numpy()
    expected = moments.moment_gaps(fake, real)
    assert rows.loc["coordinates", "kurtosis_gap"] == pytest.approx(expected["kurtosis_gap"], rel=1e-9)
    assert rows.loc["coordinates_real_vs_real", "kurtosis_gap"] < rows.loc["coordinates", "kurtosis_gap"]
    assert rows.loc["coordinates", "clip_params"] != rows.loc["coordinates", "clip_params"]  # unclipped: none


def test_the_feature_cache_is_checked_only_when_an_image_run_needs_it(tmp_path, tiny_images):
    """A 2-D run never writes to --stats-dir, so an unusable one does not stop it; an image run's
    unusable --stats-dir is refused before anything is computed."""
    not_a_folder = tmp_path / "stats"
    not_a_folder.write_text("a file of the user's")
    toy, image = str(tmp_path / "toy"), str(tmp_path / "image")
    for out, flags in ((toy, ["--dataset", "ring8"]), (image, ["--dataset", "folder", "--data-root", tiny_images,
                                                               "--batch-size", "8"])):
        with pytest.raises(SystemExit):
            run_main(lambda: train.main([*flags, "--loss", "gan", "--steps", "2", "--out", out]))
    assert moments.main([toy, "--n", "50", "--stats-dir", str(not_a_folder)]) == 0
    with pytest.raises(SystemExit) as refused:
        run_main(lambda: moments.main([image, "--n", "20", "--fid-weights", "random", "--stats-dir", str(not_a_folder)]))
    assert refused.value.code == 2 and not_a_folder.read_text() == "a file of the user's"


def test_image_runs_give_pixel_feature_and_floor_rows(tmp_path, tiny_images):
    out = str(tmp_path / "run")
    with pytest.raises(SystemExit):
        run_main(lambda: train.main(["--dataset", "folder", "--data-root", tiny_images, "--loss", "gan", "--steps", "2",
                                     "--batch-size", "8", "--out", out]))
    csv = tmp_path / "moments.csv"
    assert moments.main([out, "--n", "20", "--fid-weights", "random", "--stats-dir", str(tmp_path / "stats"),
                         "--csv", str(csv)]) == 0
    rows = pd.read_csv(csv).set_index("space")
    assert sorted(rows.index) == ["inception", "pixels", "pixels_real_vs_real"]
    assert rows.loc["pixels", "coordinates"] <= 3072 and rows.loc["inception", "coordinates"] <= 2048
