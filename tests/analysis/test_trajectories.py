"""analysis/trajectories.py: lockstep training sees the same batches and noise, so equal losses stay equal."""
import pandas as pd
import pytest
import torch

from analysis import trajectories
from minkgan import settings
from minkgan import trainstep
from minkgan.utils import run_main


def lockstep(losses, steps=6, **kw):
    cfg = settings.resolve(settings.build_parser().parse_args(["--loss", "wgan", "--n-critic", "1", "--dataset", "ring8"]))
    dataset = trainstep.load_training_data(cfg)
    return trajectories.run(cfg, dataset, losses, steps=steps, every=3, n_images=50,
                            **{"nudge": 1e-6, "write": lambda table: None, **kw})


def final(table, member):
    return table[(table["member"] == member) & (table["step"] == table["step"].max())]["rms_distance"].item()


def test_equal_losses_stay_equal_and_the_controls_drift():
    table = lockstep(["wgan", "wgan", "hinge", "minkowski-p4"])
    assert (table.groupby("step").size() == 6).all()
    assert (table[table["member"] == "hinge"]["rms_distance"] == 0).all()  # relu(1 - d)' = -1 below the margin
    assert final(table, "minkowski-p4") > 0
    assert table[table["step"] == 0]["rms_distance"].iloc[:4].eq(0).all()  # one initialisation for every loss
    assert table[table["step"] == 6]["rms_distance"].iloc[1] == 0  # the same loss twice: the same batches and noise
    assert 0 < final(table, "wgan (nudged 1e-06)") < final(table, "wgan (seed 1)")
    assert sorted(table["step"].unique()) == [0, 3, 6]


def test_the_distance_is_the_rms_pixel_difference():
    cfg = settings.resolve(settings.build_parser().parse_args(["--loss", "wgan", "--dataset", "ring8"]))
    dataset = trainstep.load_training_data(cfg)
    a, b = (trajectories.Member("wgan", cfg, dataset, seed) for seed in (0, 1))
    z = torch.randn(20, cfg["z_dim"])
    expected = ((a.images(z) - b.images(z)) ** 2).sum().div(a.images(z).numel()).sqrt().item()
    assert trajectories.distances([a, b], z) == [("wgan", 0.0), ("wgan", pytest.approx(expected))] and expected > 0


def test_every_measurement_is_written_as_it_is_taken():
    """A run of hours keeps its rows when it is interrupted."""
    written = []
    lockstep(["wgan", "gan"], write=lambda table: written.append(len(table)))
    assert written == [4, 8, 12]  # 4 members at steps 0, 3 and 6


def test_main_writes_the_budget_and_refuses_loss_flags(tmp_path, capsys):
    csv, figure = str(tmp_path / "t.csv"), tmp_path / "t.png"
    assert trajectories.main(["--losses", "wgan", "gan", "--steps", "2", "--every", "1", "--n-images", "8",
                              "--dataset", "ring8", "--csv", csv, "--figure", str(figure)]) == 0
    assert figure.stat().st_size > 0
    table = pd.read_csv(csv)
    assert set(table["member"]) == {"wgan", "gan", "wgan (nudged 1e-06)", "wgan (seed 1)"}
    assert (table["clip"] == 0.01).all() and (table["dataset"] == "ring8").all()
    for argv in (["--n-critic", "5"], ["--losses", "minkowski"], ["--losses", "minkowski-pX"]):
        with pytest.raises(SystemExit) as code:
            run_main(lambda: trajectories.main([*argv, "--dataset", "ring8", "--csv", csv]))
        assert code.value.code == 2 and capsys.readouterr().err.startswith("error:")
