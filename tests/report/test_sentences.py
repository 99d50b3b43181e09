"""minkgan/report/sentences.py: the prose files are read as written, and every sentence in them is one
the code fills (none dead, none missing)."""
import ast
import glob
import os
import re
import string

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
    """(page, the module's code) for every module of blocks with a PAGE, which must be its own name."""
    for path in sorted(glob.glob(os.path.join(os.path.dirname(sentences.__file__), "*.py"))):
        code = open(path).read()
        page = re.search(r'^PAGE = "([^"]+)"', code, re.M)
        if page:
            assert page.group(1) == os.path.basename(path)[:-3], f"{path}: PAGE is not the module's name"
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


def say_calls(code):
    """(sentence names, the keywords it names, whether it also passes **fields) of each say(PAGE, ...) call."""
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "say" and len(node.args) == 2:
            name = node.args[1]
            names = [b for b in (name.body, name.orelse)] if isinstance(name, ast.IfExp) else [name]
            if all(isinstance(n, ast.Constant) for n in names):  # a name looked up from a rule's word: its table's test
                yield [n.value for n in names], {k.arg for k in node.keywords if k.arg}, \
                    any(k.arg is None for k in node.keywords)


def test_each_call_fills_exactly_the_fields_its_sentence_names():
    """Checked on the code, so that a sentence on a path the committed results never take (an arm short of
    seeds, a file not yet committed) cannot fail only on the day its data arrives."""
    for page, code in pages():
        for names, keywords, spread in say_calls(code):
            fields = [{f for _, f, _, _ in string.Formatter().parse(sentences.templates(page)[n]) if f} for n in names]
            named = set().union(*fields)  # a call that chooses between two sentences fills the fields of both
            complete = spread or all(f <= keywords for f in fields)  # **fields: filled where the call runs
            assert complete and (keywords <= named if spread else keywords == named), \
                f"{page} {names}: the sentences name {[sorted(f) for f in fields]}, the call fills {sorted(keywords)}"
