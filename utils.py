"""Small helpers every script shares: one-line user errors, atomic writes, locked CSV merges."""
import argparse
import contextlib
import fcntl
import json
import math
import os
import sys
import tempfile

import pandas as pd
import torch


class UserError(Exception):
    """Bad input from the user: reported as one line, exit code 2, no traceback."""


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are UserErrors: one line, exit code 2, no usage dump."""

    def error(self, message):
        raise UserError(f"{message} (see python {self.prog} --help)")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help shows every flag's default and the description as written."""


def run_main(main):
    """Run main(); turn a UserError into `error: ...` on stderr and exit code 2."""
    try:
        code = main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)


def check_device(name):
    """torch.device(name), or a UserError when it is no device or not one this machine has."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no GPU is usable here; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s), "
                        f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device


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
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path, data):
    _atomic(path, lambda f: f.write(data))


def atomic_torch_save(obj, path):
    _atomic(path, lambda f: torch.save(obj, f))


def atomic_write_csv(df, path):
    """Write a pandas DataFrame as CSV atomically."""
    atomic_write_text(path, df.to_csv(index=False))


@contextlib.contextmanager
def folder_lock(folder):
    """An exclusive flock on a folder: files in it are replaced by rename, so the folder (not a
    file, and no lock file that would show in `git status`) is what writers agree to lock."""
    os.makedirs(folder, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _identity_value(value):
    """A key value that compares equal after a CSV round trip: 4 == 4.0 == "4", NaN == None == ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    try:
        return f"{float(value):.12g}"
    except (TypeError, ValueError):
        return str(value)


def row_identity(row, key):
    """A row's (dict's) values of the `key` columns, comparable across CSV round trips."""
    return tuple(_identity_value(row.get(k)) for k in key)


def merge_rows(old, new, key, good):
    """old's rows with new's merged in by `key` columns: a new row replaces the old row of its key
    unless the old one is good and the new one is not (good(row) -> bool); rows new does not name
    are kept, in their place."""
    rows = {row_identity(r, key): r for r in old.to_dict("records")}
    for row in new.to_dict("records"):
        i = row_identity(row, key)
        if i in rows and good(rows[i]) and not good(row):
            continue
        rows[i] = row
    columns = list(new.columns) + [c for c in old.columns if c not in new.columns]
    return pd.DataFrame(list(rows.values()), columns=columns)


def merge_csv(path, new, key, good=lambda row: True, arrange=lambda table: table):
    """Read path, merge the DataFrame `new` into it by `key` (merge_rows), arrange (e.g. sort) and
    write it back, all under a lock on its folder, so that processes merging at once lose no row."""
    with folder_lock(os.path.dirname(os.path.abspath(path))):
        old = pd.read_csv(path) if os.path.isfile(path) and os.path.getsize(path) > 0 else pd.DataFrame()
        merged = arrange(merge_rows(old, new, key, good))
        atomic_write_csv(merged, path)
    return merged


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
