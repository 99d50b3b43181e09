"""Where the repository's commands are, for the tests that must try every one of them: the scripts at
the top and the modules of analysis/, bench/ and gpu/ (run as `python -m folder.name`)."""
import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND_FOLDERS = ["", "analysis", "bench", "gpu"]
LIBRARY = "minkgan"


def commands():
    """Every file with a `__main__` block, as a path from the root: train.py, analysis/contrasts.py, ..."""
    found = []
    for folder in COMMAND_FOLDERS:
        for path in sorted(glob.glob(os.path.join(ROOT, folder, "*.py"))):
            if '__name__ == "__main__"' in open(path).read():
                found.append(os.path.relpath(path, ROOT))
    return found


def command_line(script):
    """How a command is started from the root: `python train.py` or `python -m analysis.contrasts`."""
    return [script] if os.path.dirname(script) == "" else ["-m", script[:-3].replace(os.sep, ".")]
