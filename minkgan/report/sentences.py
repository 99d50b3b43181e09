"""The prose of the generated blocks as text a person can edit: one file in minkgan/report/sentences/ per
module of blocks (regime.txt for regime.py), each sentence under a `[name]` line, its `{fields}` filled by
that module (which names its file PAGE).
Changing a sentence means editing that file, not finding its pieces in f-strings; the numbers and the
conclusion words still come from the results (the code computes them and passes them as fields)."""
import functools
import os
import re

FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sentences")
NAME = re.compile(r"^\[([a-z0-9_]+)\]$")


@functools.cache
def templates(page):
    """{name: template} of a page's file. A template's lines are joined by one space (wrapped prose);
    lines starting with # are comments."""
    found, name = {}, None
    with open(os.path.join(FOLDER, page + ".txt")) as f:
        for line in f:
            line = line.strip()
            if NAME.match(line):
                name = NAME.match(line).group(1)
                if name in found:
                    raise ValueError(f"{f.name}: [{name}] twice")
                found[name] = []
            elif line and not line.startswith("#") and name is not None:
                found[name].append(line)
    return {k: " ".join(lines) for k, lines in found.items()}


def say(page, name, **fields):
    """The sentence `name` of a page, its fields filled (str.format: {x:.3f} formats a number there)."""
    return templates(page)[name].format(**fields)
