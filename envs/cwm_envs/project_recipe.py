"""How a Python project installs and tests, read from its files without running any of them.

Read, in this order: pyproject.toml (build-system, project dependencies, test extras, PEP 735 dependency
groups, pytest's testpaths), setup.cfg, setup.py (its `setup(...)` call's literal arguments, parsed, not
run), requirements files, tox.ini (testenv deps and the pytest command), and the CI workflow files'
`pip install` and `pytest` steps (as CWM's pipeline reads GitHub Actions). Every finding names the file it
came from.
"""

import ast
import configparser
import dataclasses
import glob
import os
import re
import shlex
import tomllib

# Extras and dependency groups that hold what a project's tests need.
TEST_GROUPS = ("test", "tests", "testing", "dev")
REQUIREMENTS_RUNTIME = ("requirements.txt",)
REQUIREMENTS_TEST = (
    "requirements-test.txt",
    "requirements_test.txt",
    "requirements-tests.txt",
    "test-requirements.txt",
    "requirements-dev.txt",
    "dev-requirements.txt",
    "requirements/test.txt",
    "requirements/tests.txt",
    "requirements/testing.txt",
    "requirements/dev.txt",
)
TEST_FOLDERS = ("tests", "test", "testing")
# What every environment gets to build a project when it names no build system (PEP 518's default).
DEFAULT_BUILD = ["setuptools>=40.8.0", "wheel"]


@dataclasses.dataclass
class Recipe:
    name: str | None  # the project's name (normalized), when its files give one
    build_requires: list[str]
    requires: list[str]
    test_requires: list[str]
    test_paths: list[str]
    found: list[str]  # "file: what it told", in reading order

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


def read_recipe(repo: str) -> Recipe:
    recipe = Recipe(_project_name(repo), [], [], [], [], [])
    _pyproject(repo, recipe)
    _setup_cfg(repo, recipe)
    _setup_py(repo, recipe)
    for names, target in ((REQUIREMENTS_RUNTIME, recipe.requires), (REQUIREMENTS_TEST, recipe.test_requires)):
        for name in names:
            _requirements_file(repo, name, target, recipe)
    _tox_ini(repo, recipe)
    _workflows(repo, recipe)
    if not recipe.build_requires:
        recipe.build_requires = list(DEFAULT_BUILD)
    if not recipe.test_paths:
        recipe.test_paths = [d for d in TEST_FOLDERS if os.path.isdir(os.path.join(repo, d))][:1]
    for listed in (recipe.requires, recipe.test_requires):
        # The project itself is installed from its source, not from the index.
        listed[:] = _unique(r for r in listed if requirement_name(r) != recipe.name)
    recipe.test_paths = _unique(recipe.test_paths)
    return recipe


def requirement_name(requirement: str) -> str:
    """A requirement's project name, normalized (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))


# A requirement on a package from the index: a name, extras, versions, a marker. No path, URL or option: pip
# would build a local folder's metadata, running its setup code on the host.
_INDEX_REQUIREMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[A-Za-z0-9._,\s-]*\])?\s*([<>=!~][^;/\\@:]*)?")


def _usable(requirement: str) -> bool:
    head = requirement.split(";", 1)[0].strip()
    return bool(_INDEX_REQUIREMENT.fullmatch(head))


def _add(recipe: Recipe, target: list[str], found_in: str, what: str, requirements) -> None:
    if isinstance(requirements, str):  # one requirement written as a string, not a list
        requirements = [requirements]
    if not isinstance(requirements, (list, tuple)):
        return
    kept = [r.strip() for r in requirements if isinstance(r, str) and _usable(r)]
    if kept:
        target.extend(kept)
        recipe.found.append(f"{found_in}: {what} {', '.join(kept)}")


def _project_name(repo: str) -> str | None:
    name = _table(_toml(os.path.join(repo, "pyproject.toml")), "project").get("name")
    if not name:
        cfg = _ini(os.path.join(repo, "setup.cfg"))
        name = cfg.get("metadata", "name", fallback=None) if cfg else None
    if not name:
        name = _literal(_setup_arguments(repo).get("name"))
    return requirement_name(name) if isinstance(name, str) and name else None


def _toml(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, ValueError):  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
        return {}


def _table(data, *keys) -> dict:
    """data[k1][k2]..., {} where a level is missing or not a table."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else {}


def _ini(path: str) -> configparser.ConfigParser | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        return parser if parser.read(path, encoding="utf-8") else None
    except (configparser.Error, UnicodeDecodeError):
        return None


def _lines(value: str) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in value.splitlines() if line.split("#", 1)[0].strip()]


def _pyproject(repo: str, recipe: Recipe) -> None:
    data = _toml(os.path.join(repo, "pyproject.toml"))
    if not data:
        return
    where = "pyproject.toml"
    _add(recipe, recipe.build_requires, where, "build-system requires", _table(data, "build-system").get("requires"))
    project = _table(data, "project")
    _add(recipe, recipe.requires, where, "dependencies", project.get("dependencies", []))
    for group in TEST_GROUPS:
        _add(
            recipe,
            recipe.test_requires,
            where,
            f"extra {group!r}",
            _table(project, "optional-dependencies").get(group),
        )
        _add(
            recipe,
            recipe.test_requires,
            where,
            f"dependency group {group!r}",
            _table(data, "dependency-groups").get(group),
        )
    paths = _table(data, "tool", "pytest", "ini_options").get("testpaths", [])
    _add_paths(repo, recipe, where, [paths] if isinstance(paths, str) else paths)


def _add_paths(repo: str, recipe: Recipe, where: str, paths) -> None:
    kept = [p.rstrip("/") for p in paths if isinstance(p, str) and os.path.exists(os.path.join(repo, p))]
    kept = [p for p in kept if not os.path.isabs(p) and ".." not in p.split("/")]
    if kept:
        recipe.test_paths.extend(kept)
        recipe.found.append(f"{where}: tests in {', '.join(kept)}")


def _setup_cfg(repo: str, recipe: Recipe) -> None:
    cfg = _ini(os.path.join(repo, "setup.cfg"))
    if cfg is None:
        return
    where = "setup.cfg"
    _add(
        recipe, recipe.requires, where, "install_requires", _lines(cfg.get("options", "install_requires", fallback=""))
    )
    for group in TEST_GROUPS:
        _add(
            recipe,
            recipe.test_requires,
            where,
            f"extra {group!r}",
            _lines(cfg.get("options.extras_require", group, fallback="")),
        )
    _add(recipe, recipe.test_requires, where, "tests_require", _lines(cfg.get("options", "tests_require", fallback="")))
    for section in ("tool:pytest", "pytest"):
        _add_paths(repo, recipe, where, cfg.get(section, "testpaths", fallback="").split())


def _setup_arguments(repo: str) -> dict:
    """The keyword arguments of setup.py's `setup(...)` call, as AST nodes (the file is parsed, never run)."""
    try:
        with open(os.path.join(repo, "setup.py"), encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "setup":
            return {k.arg: k.value for k in node.keywords if k.arg}
    return {}


def _setup_py(repo: str, recipe: Recipe) -> None:
    arguments = _setup_arguments(repo)
    _add(recipe, recipe.requires, "setup.py", "install_requires", _literal(arguments.get("install_requires")))
    _add(recipe, recipe.test_requires, "setup.py", "tests_require", _literal(arguments.get("tests_require")))
    extras = _literal(arguments.get("extras_require"))
    if isinstance(extras, dict):
        for group in TEST_GROUPS:
            _add(recipe, recipe.test_requires, "setup.py", f"extra {group!r}", extras.get(group, []))


def _literal(node):
    """A literal argument's value; [] when it is computed (setup.py is read, never run)."""
    if node is None:
        return []
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return []


def _requirements_file(repo: str, name: str, target: list[str], recipe: Recipe) -> None:
    try:
        with open(os.path.join(repo, name), encoding="utf-8") as f:
            lines = _lines(f.read())
    except (OSError, UnicodeDecodeError):
        return
    _add(recipe, target, name, "requirements", lines)


def _tox_ini(repo: str, recipe: Recipe) -> None:
    cfg = _ini(os.path.join(repo, "tox.ini"))
    if cfg is None:
        return
    if cfg.has_section("testenv"):
        _add(recipe, recipe.test_requires, "tox.ini", "testenv deps", _lines(cfg.get("testenv", "deps", fallback="")))
        for command in _lines(cfg.get("testenv", "commands", fallback="")):
            _pytest_paths(repo, recipe, "tox.ini", command)
    if cfg.has_section("pytest"):
        _add_paths(repo, recipe, "tox.ini", cfg.get("pytest", "testpaths", fallback="").split())


def _pytest_paths(repo: str, recipe: Recipe, where: str, command: str) -> None:
    """The paths a `pytest ...` / `python -m pytest ...` command names (options and their values skipped)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return
    if "pytest" not in words and "py.test" not in words:
        return
    start = (words.index("pytest") if "pytest" in words else words.index("py.test")) + 1
    args = [w for w in words[start:] if not w.startswith("-") and not w.startswith("{")]
    _add_paths(repo, recipe, where, [a.split("::")[0] for a in args])


# pip install's options that take a value (a file, a path, an index): never requirements themselves.
_PIP_OPTIONS_WITH_VALUE = {
    "-r",
    "--requirement",
    "-c",
    "--constraint",
    "-e",
    "--editable",
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "-t",
    "--target",
}


def _installed(words: list[str]) -> list[str]:
    """The requirements a `pip install` command's words name."""
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in _PIP_OPTIONS_WITH_VALUE:
            skip = True
        elif not word.startswith("-"):
            kept.append(word.strip("'\""))
    return kept


def _workflows(repo: str, recipe: Recipe) -> None:
    """`run:` steps of GitHub Actions workflows: what they pip install and which paths they give pytest."""
    for path in sorted(glob.glob(os.path.join(repo, ".github", "workflows", "*.y*ml"))):
        where = os.path.relpath(path, repo)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            continue
        for line in text.splitlines():
            command = line.strip().removeprefix("- ").removeprefix("run:").strip().strip("|").strip()
            for part in re.split(r"&&|;", command):
                words = part.split()
                if "pip" in words and "install" in words:
                    requirements = _installed(words[words.index("install") + 1 :])
                    _add(recipe, recipe.test_requires, where, "pip install", requirements)
                _pytest_paths(repo, recipe, where, part)
