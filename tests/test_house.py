"""The shape of the house: layers point one way, no import cycle, no module over 800 lines,
no function written twice. Read from the source (nothing is imported or run)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flows", "features", "models")
MAX_LINES = 800
#: what each layer may import from the project (flows -> models -> features)
ALLOWED = {
    "flows": {"flows", "models", "features"},
    "models": {"models", "features"},
    "features": {"features"},
}
#: libraries that only the flows layer may know
FLOWS_ONLY = ("prefect", "mlflow")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports_of(path: Path, name: str) -> set[str]:
    """Every module named by an import anywhere in the file (functions included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def project_graph() -> dict[str, set[str]]:
    mods = modules()
    graph = {}
    for name, path in mods.items():
        graph[name] = {m for m in imports_of(path, name) if m in mods and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    assert cycles(project_graph()) == []


def test_layers_point_one_way():
    wrong = []
    for name, path in modules().items():
        layer = name.split(".")[0]
        for imported in imports_of(path, name):
            top = imported.split(".")[0]
            if top in PACKAGES and top not in ALLOWED[layer]:
                wrong.append(f"{name} imports {imported}")
            if layer != "flows" and top in FLOWS_ONLY:
                wrong.append(f"{name} imports {imported} (only flows/ may)")
    assert wrong == []


def test_steps_and_store_do_not_need_prefect():
    """Only the thin flows (retrain, score, serve) and the CLI know Prefect."""
    wrong = [
        f"{name} imports {imported}"
        for name, path in modules().items()
        if name.startswith(("flows.steps", "flows.store", "flows.report", "flows.config"))
        for imported in imports_of(path, name)
        if imported.split(".")[0] == "prefect"
    ]
    assert wrong == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_over_the_limit(package):
    long = {
        str(path.relative_to(ROOT)): n
        for name, path in modules().items()
        if name.split(".")[0] == package
        and (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def _body_key(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The function's body as a comparable text (docstring dropped); None when short."""
    body = fn.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    if not body:
        return None
    lines = body[-1].end_lineno - body[0].lineno + 1
    if lines < 4:
        return None
    args = ast.dump(fn.args, annotate_fields=False, include_attributes=False)
    return args + "".join(ast.dump(s, include_attributes=False) for s in body)


def copied_functions(sources: dict[str, str]) -> list[list[str]]:
    seen = defaultdict(list)
    for name, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                key = _body_key(node)
                if key is not None:
                    seen[key].append(f"{name}:{node.name}")
    return [
        sorted(places) for places in seen.values() if len({p.split(":")[0] for p in places}) > 1
    ]


def test_copy_finder_finds_a_planted_copy():
    helper = (
        "def _ratio(a, b):\n    if a is None:\n        return None\n    x = a / b\n    return x\n"
    )
    other = "def ratio(a, b):\n    return a\n"
    assert copied_functions({"m1": helper, "m2": helper.replace("_ratio", "share")}) == [
        ["m1:_ratio", "m2:share"]
    ]
    assert copied_functions({"m1": helper, "m2": other}) == []


def test_no_function_is_written_twice():
    sources = {name: path.read_text(encoding="utf-8") for name, path in modules().items()}
    assert copied_functions(sources) == []
