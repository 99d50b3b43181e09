"""Small helpers every script shares: one-line user errors, output paths checked before the first
write, atomic writes, locked CSV merges that keep every row they do not replace."""
import argparse
import contextlib
import csv
import errno
import fcntl
import glob
import io
import json
import math
import os
import shutil
import sys
import tempfile
import time

import pandas as pd
import torch


class UserError(Exception):
    """Bad input from the user: reported as one line, exit code 2, no traceback."""


class WriteError(Exception):
    """A file could not be written (a full disk, a folder gone read-only): one line naming the file
    and the cause, exit code 1 (the command stopped; its input was fine). The atomic writes leave
    the file as it was."""

    def __init__(self, path, error, advice="the file is as it was before"):
        self.path, self.error = path, error
        super().__init__(f"cannot write {path} ({os_reason(error)}); {advice}")


def os_reason(error):
    """An OSError's cause in words: 'No space left on device'."""
    return error.strerror or type(error).__name__


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are UserErrors: one line, exit code 2, no usage dump."""

    def error(self, message):
        raise UserError(f"{message} (see python {self.prog} --help)")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help shows every flag's default and the description as written."""


def run_main(main):
    """Run main(); a UserError becomes `error: ...` on stderr and exit code 2, a WriteError (or any other
    OSError: the disk, not the input) `error: ...` and exit code 1, never a traceback."""
    try:
        code = main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except WriteError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        print(f"error: {e.filename + ': ' if e.filename else ''}{os_reason(e)}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code or 0)


def check_device(name):
    """torch.device(name), or a UserError when it is no device or not one this machine has."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):  # meta holds no data; the code has no path for mps and the others
        raise UserError(f"--device {name} cannot train or evaluate here; use cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no GPU is usable here; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s), "
                        f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device


def check_writable_folder(path, flag, shown=None):
    """Refuse, before anything is written, a `flag` folder that cannot hold outputs: a file (or a
    dangling symlink) there or on the way to it, or a read-only location. Creates nothing."""
    shown = shown or path
    existing = os.path.abspath(path)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if os.path.islink(existing) and not os.path.exists(existing):
        raise UserError(f"{flag} {shown}: {existing} is a dangling symlink (to {os.readlink(existing)}, which does "
                        f"not exist); make its target or name another path")
    if not os.path.isdir(existing):
        raise UserError(f"{flag} {shown}: {existing} is a file, not a folder; name a path in a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {shown}: {existing} is read-only here; name a location you can write in")


def check_writable_file(path, flag):
    """Refuse, before anything is written, a `flag` path that cannot take a file: a folder, a file on
    the way to it, or a read-only location. Creates nothing."""
    if os.path.isdir(path):
        raise UserError(f"{flag} {path} is a folder; name a file")
    check_writable_folder(os.path.dirname(os.path.abspath(path)), flag, shown=path)


def umask():
    """The process's umask (reading it means setting it, and back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


STALE_TEMPORARY_SECONDS = 3600  # a temporary of a write this old is a killed write's: no write takes an hour


def remove_stale_temporaries(pattern):
    """Delete the temporaries (files or folders) matching pattern that are older than
    STALE_TEMPORARY_SECONDS: what a kill left of a write; a younger one may be another process's
    write under way. One another process removes first is no matter."""
    for path in glob.glob(pattern):
        with contextlib.suppress(OSError):
            if time.time() - os.lstat(path).st_mtime <= STALE_TEMPORARY_SECONDS:
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)


def _atomic(path, write):
    """Write through a temporary file in the same folder, then rename: never a torn file. Any OSError
    on the way (a full disk, a read-only folder) is a WriteError naming path, the file as it was.
    The temporaries that killed writes of path left an hour or more ago are deleted first."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        remove_stale_temporaries(os.path.join(folder, ".tmp-*" + glob.escape(os.path.basename(path))))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    except OSError as e:
        raise WriteError(path, e) from None
    try:
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp's 0600 would make results unreadable to others
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError):
            raise WriteError(path, e) from None
        raise


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path, data):
    _atomic(path, lambda f: f.write(data))


def atomic_torch_save(obj, path):
    """torch.save through memory: a full disk is then an OSError of the write (a WriteError), not a
    RuntimeError from inside torch's zip writer."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    _atomic(path, lambda f: f.write(buffer.getbuffer()))


def atomic_save_figure(fig, path, **savefig_kwargs):
    """A matplotlib figure rendered in memory, then written atomically: no torn PNG on a full disk."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=os.path.splitext(path)[1][1:] or "png", **savefig_kwargs)
    _atomic(path, lambda f: f.write(buffer.getbuffer()))


def atomic_write_csv(df, path):
    """Write a pandas DataFrame as CSV atomically."""
    atomic_write_text(path, df.to_csv(index=False))


def replace_folder(folder, files):
    """Make `folder` hold copies of `files` and nothing else, whole: they are copied into a temporary
    folder beside it, which then takes its place by rename, so that the folder is complete or
    absent (a kill between the two renames), never partial. An OSError (a full disk) is a WriteError
    naming the folder, which is then as it was. The temporary folders that killed copies of it left
    an hour or more ago are deleted first."""
    parent = os.path.dirname(os.path.abspath(folder))
    try:
        os.makedirs(parent, exist_ok=True)
        remove_stale_temporaries(os.path.join(parent, f".tmp-{glob.escape(os.path.basename(folder))}-*"))
        tmp = tempfile.mkdtemp(dir=parent, prefix=f".tmp-{os.path.basename(folder)}-")
    except OSError as e:
        raise WriteError(folder, e, "the folder is as it was before") from None
    old = tmp + "-old"
    try:
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp's 0700 would make the copy unreadable to others
        for path in files:
            shutil.copyfile(path, os.path.join(tmp, os.path.basename(path)))
        if os.path.lexists(folder):
            os.rename(folder, old)
        os.rename(tmp, folder)
    except OSError as e:
        if os.path.lexists(old) and not os.path.lexists(folder):
            os.rename(old, folder)
        shutil.rmtree(tmp, ignore_errors=True)
        raise WriteError(folder, e, "the folder is as it was before") from None
    shutil.rmtree(old, ignore_errors=True)


# Numbers that differ by no more are a rerun's last-digit noise (another CPU, another order of float
# operations): a file whose numbers agree with a rewrite's to this tolerance is left byte for byte.
AGREE_RTOL, AGREE_ATOL = 1e-9, 1e-12


def cells_agree(a, b):
    """Two CSV cells (text) say the same: equal text, or numbers equal to AGREE_RTOL / AGREE_ATOL."""
    if a == b:
        return True
    try:
        return math.isclose(float(a), float(b), rel_tol=AGREE_RTOL, abs_tol=AGREE_ATOL)
    except ValueError:
        return False


def _cells(text):
    """(header, rows) of a CSV's text, every cell as written."""
    rows = list(csv.reader(io.StringIO(text)))
    return (rows[0], rows[1:]) if rows else ([], [])


def csv_texts_agree(old, new):
    """Two CSV texts have the same columns and rows, their cells agreeing (cells_agree)."""
    (old_header, old_rows), (new_header, new_rows) = _cells(old), _cells(new)
    return old_header == new_header and len(old_rows) == len(new_rows) and all(
        len(a) == len(b) and all(map(cells_agree, a, b)) for a, b in zip(old_rows, new_rows))


def write_csv_unless_agrees(df, path):
    """Write df to path as CSV, unless the file there already says the same (csv_texts_agree): a rerun
    on another machine then leaves a committed file as it is. Returns whether it wrote."""
    text = df.to_csv(index=False)
    if os.path.isfile(path):
        with open(path, encoding="utf-8", errors="replace") as f:  # a binary file agrees with nothing
            if csv_texts_agree(f.read(), text):
                return False
    atomic_write_text(path, text)
    return True


LOCK_TIMEOUT_VARIABLE = "MINKGAN_LOCK_TIMEOUT"  # seconds a merge waits for another process's folder lock
LOCK_TIMEOUT = 600.0


@contextlib.contextmanager
def folder_lock(folder):
    """An exclusive flock on a folder: files in it are replaced by rename, so the folder (not a
    file, and no lock file that would show in `git status`) is what writers agree to lock. Held by
    another process, it is waited for with one line naming that process, and given up after
    $MINKGAN_LOCK_TIMEOUT seconds (default LOCK_TIMEOUT) with a WriteError, nothing written."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise WriteError(folder, e, "nothing in it was changed") from None
    fd = os.open(folder, os.O_RDONLY)
    try:
        timeout = float(os.environ.get(LOCK_TIMEOUT_VARIABLE, LOCK_TIMEOUT))
        holder = wait_for_lock(fd, folder, timeout, folder)
        if holder is not None:
            raise WriteError(folder, OSError(errno.EWOULDBLOCK, f"locked by process {holder} for {timeout:g} s"),
                             f"nothing in it was changed: wait for process {holder} to end (or stop it), then "
                             f"run this again")
        yield
    finally:
        os.close(fd)  # closing releases the lock


def wait_for_lock(fd, path, timeout, what):
    """Take the flock on fd (a lock on path) at once, or once its holder lets go, saying in one line who
    holds it; returns None when taken, or the holder's PID after timeout seconds (the caller says what
    giving up means: the folder merge and the ops build each have their own remedy)."""
    deadline, holder = time.monotonic() + timeout, None
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            if holder is None:
                holder = lock_holder(path)
                print(f"waiting for {what}: process {holder} holds its lock (giving up after {timeout:g} s)",
                      file=sys.stderr, flush=True)
            elif time.monotonic() >= deadline:
                return holder
            time.sleep(min(0.2, timeout))


def lock_holder(path):
    """The PID of the process holding a flock on path, from Linux's /proc/locks, or 'unknown'."""
    st = os.stat(path)
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as f:
            for line in f:
                fields = line.split()
                if "FLOCK" in fields and inode in fields and "->" not in fields:
                    return fields[fields.index(inode) - 1]
    except OSError:
        pass
    return "unknown"


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


def key_held(identity):
    """A row names a key value: one without any (every key cell empty) can replace nothing and be replaced by nothing."""
    return any(identity)


def merge_rows(old, new, key, good):
    """old's rows with new's merged in by the `key` columns: a new row replaces the old rows of its key
    unless one of them is good and it is not (good(row) -> bool). Every other old row is kept, in its
    place, rows without a key value too. The index says where each row came from: old's positions
    0..len(old)-1, then len(old) + new's position."""
    offered, unkeyed = {}, []  # offered: key -> (label, row) of the new row that stands for it
    for label, row in enumerate(new.to_dict("records"), start=len(old)):
        i = row_identity(row, key)
        if not key_held(i):
            unkeyed.append((label, row))
        elif not (i in offered and good(offered[i][1]) and not good(row)):
            offered[i] = (label, row)
    old_rows = list(enumerate(old.to_dict("records")))
    old_good = {row_identity(row, key) for _, row in old_rows if good(row)}
    replacing = {i: entry for i, entry in offered.items() if good(entry[1]) or i not in old_good}
    out = []
    for label, row in old_rows:
        i = row_identity(row, key)
        if i not in replacing:
            out.append((label, row))
        elif replacing[i] is not None:  # the new row takes the place of the first old row of its key
            out.append(replacing[i])
            replacing[i] = None
    out += [entry for entry in replacing.values() if entry is not None] + unkeyed
    columns = list(old.columns) + [c for c in new.columns if c not in old.columns]  # a diff shows only new columns
    return pd.DataFrame([row for _, row in out], index=[label for label, _ in out], columns=columns)


def read_csv_of_ours(path, key, shown=None, remedy="name another file; this one is left as it is", added=()):
    """The text of the CSV at path ('' where there is none), refused (a UserError, nothing changed)
    when it is not a CSV one can merge rows into by `key`: a folder, binary or malformed, or a CSV
    whose columns lack the key (someone else's: merging would mix two tables). `added`: key columns
    that came later, which a CSV written before them may lack (its rows are empty there)."""
    shown = shown or path
    if not os.path.lexists(path):
        return ""
    if os.path.isdir(path):
        raise UserError(f"{shown} is a folder, not a CSV; {remedy}")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise UserError(f"{shown} is not a text CSV (it holds binary data); {remedy}") from None
    except OSError as e:
        raise UserError(f"cannot read {shown} ({os_reason(e)}); {remedy}") from None
    if not text.strip():
        return ""
    try:
        columns = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False).columns
    except pd.errors.ParserError as e:
        raise UserError(f"{shown} is not a readable CSV ({str(e).strip().splitlines()[-1]}); {remedy}") from None
    missing = [k for k in key if k not in columns and k not in added]
    if missing:
        raise UserError(f"{shown} is not a CSV of this repository's (it has no column {', '.join(missing)}); "
                        f"{remedy}")
    return text


def check_merge_target(path, key, flag, added=()):
    """Refuse, before anything is computed or written, a `flag` CSV that merge_csv would refuse
    (read_csv_of_ours) or could not write (check_writable_file)."""
    check_writable_file(path, flag)
    read_csv_of_ours(path, key, f"{flag} {path}", f"name another {flag}; this file is left as it is", added)


def integer_columns(cells):
    """The columns of a CSV (a DataFrame of its cells as text) whose every non-empty cell is an integer."""
    return [c for c in cells.columns if cells[c].str.fullmatch(r"(-?\d+)?").all() and (cells[c] != "").any()]


def whole_number(cell):
    """'1562.0' -> '1562'; any other cell as it is."""
    try:
        value = float(cell)
    except ValueError:
        return cell
    return str(int(value)) if value.is_integer() else cell


def csv_cell(value):
    """A value as pandas' to_csv writes it: empty for a missing one."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def merged_csv_text(old_text, new, key, good=lambda row: True, arrange=lambda table: table):
    """The CSV text of old_text's rows with the DataFrame `new` merged in (merge_rows), arranged
    (arrange may sort and drop rows, keeping the index, and fill cells). An old row that is kept keeps its
    cells as they were written, byte for byte (no 3 -> 3.0), but an empty one takes arrange's value; a new row whose cells agree with those of the old
    row it replaces (cells_agree: a rerun's last-digit noise) keeps the old row's text too."""
    old = pd.read_csv(io.StringIO(old_text)) if old_text else pd.DataFrame()
    old_cells = pd.read_csv(io.StringIO(old_text), dtype=str, keep_default_na=False) if old_text else old
    new_cells = pd.read_csv(io.StringIO(new.to_csv(index=False)), dtype=str, keep_default_na=False) \
        if len(new.columns) else new
    for column in set(integer_columns(old_cells)) & set(new_cells.columns):  # a row without a value made 3 -> 3.0
        new_cells[column] = new_cells[column].map(whole_number)
    table = merge_rows(old, new, key, good)
    columns = list(table.columns)
    if not columns:
        return ""
    first_of_key = {}
    for label, row in enumerate(old.to_dict("records")):
        first_of_key.setdefault(row_identity(row, key), label)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    arranged = arrange(table)
    for label, row in zip(arranged.index, arranged.to_dict("records")):
        if label < len(old):  # an empty cell takes what arrange derived (a column added later, as `failed`)
            writer.writerow([old_cells.iloc[label].get(c, "") or csv_cell(row[c]) for c in columns])
            continue
        cells = [new_cells.iloc[label - len(old)].get(c, "") for c in columns]
        identity = row_identity(row, key)
        replaced = first_of_key.get(identity) if key_held(identity) else None
        kept = [old_cells.iloc[replaced].get(c, "") for c in columns] if replaced is not None else None
        writer.writerow(kept if kept and all(map(cells_agree, kept, cells)) else cells)
    return text.getvalue()


def merge_csv(path, new, key, good=lambda row: True, arrange=lambda table: table, added=(), adapt=None):
    """Merge the DataFrame `new` into the CSV at path by `key` (merged_csv_text: every row it does not
    replace is kept as written), all under a lock on its folder, so that processes merging at once lose
    no row. A CSV that is not ours (read_csv_of_ours; `added` names the key columns it may lack) is
    refused and left as it is. adapt(old_text, new), called under the lock, may rewrite the new rows to
    the file's own spelling of a key. Returns the table as a reader of the file sees it."""
    with folder_lock(os.path.dirname(os.path.abspath(path))):
        old_text = read_csv_of_ours(path, key, added=added)
        new = adapt(old_text, new) if adapt else new
        text = merged_csv_text(old_text, new, key, good, arrange)
        atomic_write_text(path, text)
    return pd.read_csv(io.StringIO(text)) if text else pd.DataFrame()


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


def is_number(cell):
    """A CSV cell that reads as a float (nan and inf too: a diverging run logs them)."""
    try:
        float(cell)
    except ValueError:
        return False
    return True
