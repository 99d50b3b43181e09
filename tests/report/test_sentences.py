"""minkgan/report/sentences.py: the prose files are read as written, and every sentence in them is one
the code fills (none dead, none missing)."""
import glob
import os
import re

import pytest

from minkgan.report import sentences


def test_a_sentence_is_its_lines_joined_by_a_space_without_comments(tmp_path, monkeypatch):
    (tmp_path / "page.txt").write_text("# a comment\n[first]\nOne {x:.2f}\n  and two.\n\n# between\n[second]\n{y}\n")
    monkeypatch.setattr(sentences, "FOLDER", str(tmp_path))
    sentences.templates.cache_clear()
    try:
        assert sentences.templates("page") == {"first": "One {x:.2f} and two.", "second": "{y}"}
        assert sentences.say("page", "first", x=1.234) == "One 1.23 and two."
        with pytest.raises(KeyError):
            sentences.say("page", "second")  # a field the code does not fill is an error, not a blank
        (tmp_path / "twice.txt").write_text("[a]\nx\n[a]\ny\n")
        with pytest.raises(ValueError, match=r"\[a\] twice"):
            sentences.templates("twice")
    finally:
        sentences.templates.cache_clear()


def pages():
    """(page, the text of the module that says it) for every module with a PAGE."""
    for path in sorted(glob.glob(os.path.join(os.path.dirname(sentences.__file__), "*.py"))):
        code = open(path).read()
        page = re.search(r'^PAGE = "([^"]+)"', code, re.M)
        if page:
            yield page.group(1), code


def test_every_sentence_file_belongs_to_a_page_and_every_sentence_is_used():
    found = dict(pages())
    files = {os.path.basename(p)[:-4] for p in glob.glob(os.path.join(sentences.FOLDER, "*.txt"))}
    assert files and files == set(found), "a sentences file without a module that says PAGE = its name, or the reverse"
    for page, code in found.items():
        quoted = set(re.findall(r'"([a-z0-9_]+)"', code))
        unused = set(sentences.templates(page)) - quoted
        assert not unused, f"{page}: sentences no code says: {sorted(unused)}"
        missing = set(re.findall(r'say\(PAGE, "([a-z0-9_]+)"', code)) - set(sentences.templates(page))
        assert not missing, f"{page}: the code says sentences the file lacks: {sorted(missing)}"
