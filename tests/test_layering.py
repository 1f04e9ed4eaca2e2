"""Imports point one way (DESIGN.md) and no module imports itself back, imports inside functions included:
checked on the source, so a wrong import fails here first."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = {
    "cwm_common": ROOT / "cwm_common",
    "cwm_envs": ROOT / "envs" / "cwm_envs",
    "cwm_data": ROOT / "data" / "cwm_data",
    "cwm_tasks": ROOT / "tasks" / "cwm_tasks",
    "cwm_jax": ROOT / "cwm_jax",
    "cwm_rl": ROOT / "rl" / "cwm_rl",
    "configs": ROOT / "configs",
    "cwm_cli": ROOT / "cwm_cli",
}
ACCELERATOR = {"jax", "flax", "optax", "orbax"}
# What each package may import among ours and the accelerator stack (the library never imports configs).
ALLOWED = {
    "cwm_common": set(),
    "cwm_envs": {"cwm_common"},
    "cwm_data": {"cwm_common", "cwm_envs"},
    "cwm_tasks": {"cwm_common", "cwm_envs", "cwm_data"},
    "cwm_jax": {"cwm_common", "cwm_envs", "cwm_data", "cwm_tasks"} | ACCELERATOR,
    "cwm_rl": {"cwm_common", "cwm_envs", "cwm_data", "cwm_tasks", "cwm_jax"} | ACCELERATOR,
    "configs": {"cwm_common", "cwm_jax"},
    "cwm_cli": {"cwm_common", "cwm_envs", "cwm_data", "cwm_tasks", "cwm_jax", "cwm_rl", "configs", "jax"},
}
GUARDED = set(PACKAGES) | ACCELERATOR | {"torch", "transformers"}


def module_files(packages: dict[str, pathlib.Path]) -> dict[str, pathlib.Path]:
    """Dotted module name -> file, for every module of the packages (a package is its __init__)."""
    modules = {}
    for name, folder in packages.items():
        for path in folder.rglob("*.py"):
            parts = [name, *path.relative_to(folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_of(path: pathlib.Path) -> set[tuple[str, str | None]]:
    """Every absolute import in the file, at any depth (inside functions too): (module, None) for `import
    module`, (module, name) for `from module import name`."""
    found: set[tuple[str, str | None]] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {(alias.name, None) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {(node.module, alias.name) for alias in node.names}
    return found


def import_graph(packages: dict[str, pathlib.Path]) -> dict[str, set[str]]:
    """Module -> the modules it imports: `from a import b` is an edge to a.b when that is a module, else to a."""
    modules = module_files(packages)
    graph = {}
    for name, path in modules.items():
        targets = set()
        for module, imported in imports_of(path):
            if imported and f"{module}.{imported}" in modules:
                targets.add(f"{module}.{imported}")
            elif module in modules:
                targets.add(module)
        graph[name] = targets - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.mark.parametrize("package", list(PACKAGES))
def test_imports_point_one_way(package):
    for path in PACKAGES[package].rglob("*.py"):
        roots = {module.split(".")[0] for module, _ in imports_of(path)}
        bad = (roots & GUARDED) - ALLOWED[package] - {package}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_package_layers_form_no_cycle():
    assert cycles({p: ALLOWED[p] & set(PACKAGES) for p in PACKAGES}) == []


def test_no_module_imports_itself_back():
    assert cycles(import_graph(PACKAGES)) == []


def test_a_planted_cycle_is_found(tmp_path):
    package = tmp_path / "planted"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from planted import b\n")
    (package / "b.py").write_text("def late():\n    from planted.c import helper\n    return helper\n")
    (package / "c.py").write_text("import planted.a\n\ndef helper():\n    pass\n")
    (package / "d.py").write_text("from planted import a\n")
    assert cycles(import_graph({"planted": package})) == [["planted.a", "planted.b", "planted.c"]]
    (package / "c.py").write_text("def helper():\n    pass\n")
    assert cycles(import_graph({"planted": package})) == []


def _sources(*exempt: str):
    for name, path in module_files(PACKAGES).items():
        if name not in exempt:
            yield name, path.read_text()


def test_the_chat_format_is_written_out_in_one_module():
    home = "cwm_data.chat_format"
    for name, text in _sources(home, "cwm_data.special_tokens"):
        for spelling in ("START_HEADER", "<|start_header_id|>", "You always reason before responding"):
            assert spelling not in text, f"{name} renders chat itself ({spelling!r}); use {home}"


def test_rl_and_the_evals_are_thin_users_of_the_task_families():
    graph = import_graph(PACKAGES)
    for name, targets in graph.items():
        if name.startswith("cwm_rl"):
            assert not any(t.startswith("cwm_jax.evals") for t in targets), f"{name} imports the evals"
    for name, text in _sources():
        if not name.startswith("cwm_tasks"):
            for prompt_text in ("Wrap your answer in", "competitive programming question", "submit a git diff patch"):
                assert prompt_text not in text, (
                    f"{name} writes a task's prompt ({prompt_text!r}); it lives in cwm_tasks"
                )
