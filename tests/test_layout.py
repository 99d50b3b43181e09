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


def documented_commands():
    """Every `python script.py` and `python -m module` of this repository that README.md and docs/ name."""
    import re
    texts = [open(p).read() for p in [os.path.join(layout.ROOT, "README.md"), *glob.glob(os.path.join(layout.ROOT, "docs", "*.md"))]]
    found = set(re.findall(r"python (-m [a-z_]+\.[a-z_]+|[a-z_]+\.py)\b", "\n".join(texts)))
    return sorted(c for c in found if c.startswith("-m ") or os.path.isfile(os.path.join(layout.ROOT, c)))


def test_every_documented_command_answers_help():
    """The docs name commands by the layout's paths; each of them starts and prints its help (exit 0)."""
    import subprocess
    import sys
    commands = documented_commands()
    assert "-m analysis.p_effect" in commands and "train.py" in commands
    for command in commands:
        done = subprocess.run([sys.executable, *command.split(), "--help"], cwd=layout.ROOT, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0 and "Traceback" not in done.stderr, f"python {command} --help: {done.stderr[-300:]}"



def test_every_command_in_a_folder_also_runs_as_a_path():
    """`python bench/step.py --help` works as `python -m bench.step --help` does (no ModuleNotFoundError)."""
    import subprocess
    import sys
    nested = [c for c in layout.commands() if os.path.dirname(c)]
    assert "analysis/contrasts.py" in nested
    for script in nested:
        done = subprocess.run([sys.executable, script, "--help"], cwd=layout.ROOT, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0 and "Traceback" not in done.stderr, f"python {script} --help: {done.stderr[-300:]}"

MAX_MODULE_LINES, MAX_FUNCTION_LINES = 500, 60  # issue 35: a module and a function a reader takes in at once


def code_files():
    """Every Python file of the commands and the library (not the tests)."""
    folders = [*layout.COMMAND_FOLDERS, layout.LIBRARY, os.path.join(layout.LIBRARY, "*")]
    return sorted({p for f in folders for p in glob.glob(os.path.join(layout.ROOT, f, "*.py"))})


def test_no_module_or_function_is_too_long_to_read():
    too_long = []
    for path in code_files():
        text = open(path).read()
        name = os.path.relpath(path, layout.ROOT)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}: {node.name} {length} lines")
    assert not too_long, too_long
