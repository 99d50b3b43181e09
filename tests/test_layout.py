"""The layout the README's table promises: thin commands over one library, imports one way."""
import ast
import glob
import os

import layout

SCRIPTS = {"train", "evaluate", "ablate_p", "report"}  # the top-level commands


def imported_modules(path):
    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def test_the_commands_are_found_in_every_folder():
    found = layout.commands()
    for expected in ("train.py", "report.py", "analysis/contrasts.py", "bench/step.py", "gpu/gpu_check.py"):
        assert expected in found
    assert not any(c.startswith("minkgan") for c in found)


def test_no_command_imports_another_command():
    for script in layout.commands():
        for name in imported_modules(os.path.join(layout.ROOT, script)):
            top = name.split(".")[0]
            assert top not in SCRIPTS and top not in ("analysis", "bench", "gpu"), f"{script} imports {name}"


def test_the_library_imports_no_command_and_has_no_main():
    for path in glob.glob(os.path.join(layout.ROOT, layout.LIBRARY, "*.py")):
        text = open(path).read()
        assert '__name__ == "__main__"' not in text, path
        for name in imported_modules(path):
            assert name.split(".")[0] not in SCRIPTS | {"analysis", "bench", "gpu"}, f"{path} imports {name}"


def test_every_folder_says_what_it_is_for():
    for folder in [*layout.COMMAND_FOLDERS[1:], layout.LIBRARY]:
        init = os.path.join(layout.ROOT, folder, "__init__.py")
        assert ast.get_docstring(ast.parse(open(init).read())), f"{init} needs a docstring"
