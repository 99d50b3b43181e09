"""Small helpers every script shares: one-line user errors and atomic writes."""
import argparse
import contextlib
import json
import os
import sys
import tempfile

import torch


class UserError(Exception):
    """Bad input from the user: reported as one line, exit code 2, no traceback."""


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are UserErrors: one line, exit code 2, no usage dump."""

    def error(self, message):
        raise UserError(f"{message} (see python {self.prog} --help)")


def run_main(main):
    """Run main(); turn a UserError into `error: ...` on stderr and exit code 2."""
    try:
        code = main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)


def _atomic(path, write):
    """Write through a temporary file in the same folder, then rename: never a torn file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make results unreadable to others
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path, text):
    _atomic(path, lambda f: f.write(text.encode()))


def atomic_torch_save(obj, path):
    _atomic(path, lambda f: torch.save(obj, f))


def atomic_write_csv(df, path):
    """Write a pandas DataFrame as CSV atomically."""
    atomic_write_text(path, df.to_csv(index=False))


def read_json(path):
    """The JSON object in path, or None when it is missing or unreadable (a run still starting)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def eval_mode(module):
    """Put a module in eval mode for a block, then back in the mode it was in."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
