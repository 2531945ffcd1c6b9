"""The package's shape: which part may import which (arrows flow one way, no cycles), how many
modules sit at the top level, and how long a module may grow. Read from the source with `ast`,
so the rules cover imports inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "bertserve"
CORE = "core"  # the modules at the top level: errors, files, layout, tokenizer, client, cli

# Who may import whom. Arrows: commands -> serving/export/training/bench -> inference/data/pretrained -> core.
# export reads run folders through training.run_folder; training reads export version folders through
# inference.model (distillation teachers, training/distillation.py); bench drives servers over their protocols
# (its gRPC load uses serving.grpc's client) and runs engines in-process.
ALLOWED = {
    CORE: {CORE},
    "data": {CORE},
    "pretrained": {CORE},
    "inference": {CORE},
    "training": {CORE, "data", "pretrained", "inference"},
    "export": {CORE, "inference", "training", "data", "pretrained"},
    "serving": {CORE, "inference"},
    "bench": {CORE, "inference", "data", "serving"},
    "commands": {CORE, "data", "pretrained", "inference", "training", "export", "serving", "bench", "commands"},
}
# cli.py finds the command modules by name (importlib), never by import statement.
TOP_LEVEL_LIMIT = 8
MODULE_LINE_LIMIT = 600  # STYLE.md: aim under ~400 lines, split past 600


def part_of(module: str) -> str:
    """'bertserve.serving.app' -> 'serving'; a top-level module -> 'core'."""
    pieces = module.split(".")
    if len(pieces) >= 2 and (PACKAGE / pieces[1]).is_dir():
        return pieces[1]
    return CORE


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every bertserve module `path` imports, at any depth (relative imports resolved)."""
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "bertserve")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "bertserve":
                continue
            for alias in node.names:  # `from bertserve.serving import app` imports a module
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _is_module(candidate) else base)
    return found


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def source_files() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if "generated" not in path.parts)


def test_arrows_flow_one_way():
    wrong = []
    for path in source_files():
        source = part_of(module_name(path))
        for imported in imports_of(path):
            target = part_of(imported)
            if imported == "bertserve":  # `from bertserve import __version__`
                continue
            if target != source and target not in ALLOWED[source]:
                wrong.append(f"{module_name(path)} ({source}) imports {imported} ({target})")
    assert wrong == []


def test_no_import_cycles_between_modules():
    graph = {module_name(path): {m for m in imports_of(path) if m != "bertserve"} for path in source_files()}
    visiting, done, cycles = set(), set(), []

    def visit(node: str, trail: list[str]) -> None:
        if node in done or node not in graph:
            return
        if node in visiting:
            cycles.append(" -> ".join(trail[trail.index(node):] + [node]))
            return
        visiting.add(node)
        for neighbour in sorted(graph[node]):
            if neighbour.startswith(node + ".") or node.startswith(neighbour + "."):
                continue  # a package and its own modules (package __init__ docstrings only)
            visit(neighbour, trail + [node])
        visiting.discard(node)
        done.add(node)

    for node in sorted(graph):
        visit(node, [])
    assert cycles == []


def test_few_modules_at_the_top_level():
    top = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(top) <= TOP_LEVEL_LIMIT, top


def test_no_module_past_the_split_line():
    long = {module_name(path): lines for path in source_files()
            if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MODULE_LINE_LIMIT}
    assert long == {}


def test_the_serving_side_never_imports_torch():
    """serving/ and inference/ run in the server process: importing torch there costs ~2.7 s of
    start-up and ~700 MB (PERF_NOTES.md)."""
    heavy = []
    for path in source_files():
        if part_of(module_name(path)) not in {"serving", "inference"}:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            heavy += [f"{module_name(path)}: {name}" for name in names if name.split(".")[0] in {"torch", "transformers"}]
    assert heavy == []
