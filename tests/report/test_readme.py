"""The README's quick start: exactly two commands, CI runs the second, the first is a valid run."""
import os
import re
import shlex

from minkgan import settings

from layout import ROOT  # noqa: E402


def quick_start_commands():
    readme = open(os.path.join(ROOT, "README.md")).read()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if re.match(r"^    \S", line)]


def test_quick_start_has_two_commands_and_ci_runs_the_test_one():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert all(c.startswith("pip install -r requirements.txt && python ") for c in commands)
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    test_command = commands[1].replace("pip install -r", "pip install -q -r")
    assert test_command in ci.splitlines()


def test_quick_start_trains_the_paper_loss_on_embedded_data():
    main = shlex.split(commands_after_install(quick_start_commands()[0]))
    assert main[:2] == ["python", "train.py"]
    cfg = settings.resolve(settings.build_parser().parse_args(main[2:]))
    assert (cfg["dataset"], cfg["loss"], cfg["p"]) == ("ring8", "minkowski", 4.0)


def commands_after_install(command):
    return command.split("&&", 1)[1].strip()


def test_help_shows_every_default_and_what_a_sweep_forwards():
    import subprocess
    import sys
    for script in ("train.py", "evaluate.py", "ablate_p.py"):
        text = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True).stdout
        assert "(default:" in text, script
    text = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "ablate_p.py passes every flag" in text and "--overwrite" in text.split("except those it sets")[1]
