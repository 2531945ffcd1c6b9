"""The docs match the code: every `bertserve ...` command in a code block of README.md and docs/*.md
parses with today's CLI, every repository path they name exists, and every `bertserve.x.y` module
(and name in it) they mention exists. (Commands whose arguments are elided with `...` are skipped.)"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from bertserve.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"^\s*(?:\$ )?(?:\S*/)?bertserve (.*)$")
PATH = re.compile(r"(?<![\w./-])((?:src|tests|scripts|benchmarks|docker|deploy|docs)/[\w./-]*\w)")
MODULE = re.compile(r"`(bertserve(?:\.\w+)+)")
# `bertserve.engine` in the docs is a key of the metadata's "bertserve" object, not a module.
METADATA_KEYS = {"bertserve.labels", "bertserve.max_seq_length", "bertserve.vocab_size", "bertserve.engine"}


def code_lines(doc: Path) -> list[tuple[int, str]]:
    """(line number, line) inside ``` blocks, with `\\` continuations joined."""
    lines, inside, pending = [], False, None
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith("```"):
            inside = not inside
            continue
        if not inside:
            continue
        if pending is not None:
            pending = (pending[0], pending[1][:-1] + " " + line.strip())
        else:
            pending = (number, line)
        if not pending[1].endswith("\\"):
            lines.append(pending)
            pending = None
    return lines


def documented_commands() -> list[tuple[str, list[str]]]:
    found = []
    for doc in DOCS:
        for number, line in code_lines(doc):
            match = COMMAND.match(line)
            if not match or "..." in line:
                continue
            text = match[1].split(" #")[0]
            text = re.split(r"\s(?:&|\||<|>|&&)(?:\s|$)", text)[0].rstrip(" &")  # the bertserve part only
            text = re.sub(r"\[(--[^\]]+)\]", r"\1", text)  # `[--json]`: an optional flag, shown
            text = re.sub(r"\$\{?\w+\}?|\$!", "1", text)  # shell variables ($PID, $!) stand for values
            found.append((f"{doc.relative_to(ROOT)}:{number}", shlex.split(text)))
    return found


COMMANDS = documented_commands()


def test_the_readme_and_the_package_docstring_show_every_command():
    import bertserve
    from bertserve.cli import COMMANDS as CLI_COMMANDS

    in_readme = [args[0] for where, args in COMMANDS if where.startswith("README.md:") and args]
    assert set(in_readme) >= set(CLI_COMMANDS)
    listed = re.findall(r"^    ([\w-]+) ", bertserve.__doc__, re.MULTILINE)
    assert listed == list(CLI_COMMANDS)


@pytest.mark.parametrize(("where", "args"), COMMANDS, ids=[where for where, _ in COMMANDS])
def test_documented_command_parses(where, args):
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(args)
    except SystemExit as exit_:
        assert not exit_.code, f"{where}: bertserve {' '.join(args)}\n{errors.getvalue()}"


def test_documented_paths_exist():
    missing = []
    for doc in DOCS:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for path in PATH.findall(line):
                if "<" not in path and not (ROOT / path).exists():
                    missing.append(f"{doc.relative_to(ROOT)}:{number}: {path}")
    assert missing == []


def defined_in(source: Path) -> set[str]:
    """Names a module defines at its top level (classes, functions, assignments, imports)."""
    names = set()
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def names_something(name: str) -> bool:
    """`bertserve.errors.ClientError`: a package/module path under src/, then at most one name
    defined in that module (methods and attributes after it are not checked). Read, not imported."""
    folder, parts = ROOT / "src", name.split(".")
    for index, part in enumerate(parts):
        if (folder / part).is_dir():
            folder = folder / part
        elif (folder / f"{part}.py").is_file():
            rest = parts[index + 1 :]
            return not rest or rest[0] in defined_in(folder / f"{part}.py")
        else:
            return index > 0 and parts[index] in defined_in(folder / "__init__.py")
    return True


def test_documented_modules_exist():
    missing = []
    for doc in DOCS:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            missing += [f"{doc.relative_to(ROOT)}:{number}: {name}" for name in MODULE.findall(line)
                        if name not in METADATA_KEYS and not names_something(name)]
    assert missing == []
