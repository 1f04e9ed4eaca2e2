"""Executable environments for real projects: the recipe read from a project's files (never run), an
environment built for a real PyPI package whose suite passes in the sandbox against the repository's own
source, and a build that fails reporting its step."""

import json
import os
import shutil
import textwrap

import pytest

from cwm_cli.main import main
from cwm_envs.project_recipe import read_recipe
from cwm_tasks.project_env import ENV_DIR, ENV_FILE, REPO_DIR, REPORT_FILE, run_suite


def _write(root, files: dict[str, str]):
    for path, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
        with open(os.path.join(root, path), "w") as f:
            f.write(textwrap.dedent(text))


def test_the_recipe_comes_from_every_file_that_says_how_to_install_and_test(tmp_path):
    ran = tmp_path / "setup.py ran"
    _write(
        tmp_path,
        {
            "pyproject.toml": """
                [build-system]
                requires = ["flit_core>=3.4"]
                [project]
                name = "Demo_Pkg"
                dependencies = ["attrs>=22"]
                [project.optional-dependencies]
                test = ["hypothesis", "demo-pkg[extra]"]
                [dependency-groups]
                dev = ["pytest-mock", {include-group = "test"}]
                """,
            "setup.py": f"""
                from setuptools import setup
                open({str(ran)!r}, "w").close()
                setup(install_requires=["six"], tests_require=["mock"], extras_require=compute())
                """,
            "requirements-test.txt": "-r requirements.txt\ncoverage  # measured\n\n",
            "tox.ini": "[testenv]\ndeps =\n    freezegun\n    -e .\ncommands = pytest {posargs} tests/unit -x\n",
            ".github/workflows/ci.yml": """
                jobs:
                  test:
                    steps:
                      - run: python -m pip install -e . "toolz>=0.12" && python -m pytest tests/integration
                """,
            "tests/unit/test_a.py": "",
            "tests/integration/test_b.py": "",
        },
    )
    recipe = read_recipe(str(tmp_path))
    assert recipe.build_requires == ["flit_core>=3.4"]
    assert recipe.requires == ["attrs>=22", "six"]
    # The project's own extra is dropped (it is installed from its source); options and paths are not packages.
    assert recipe.test_requires == ["hypothesis", "pytest-mock", "mock", "coverage", "freezegun", "toolz>=0.12"]
    assert recipe.test_paths == ["tests/unit", "tests/integration"]
    assert any(f.startswith(".github/workflows/ci.yml: pip install") for f in recipe.found)
    assert not ran.exists()  # setup.py was parsed, never run


@pytest.mark.bwrap
def test_an_environment_for_a_pypi_package_runs_its_suite_against_its_source(tmp_path):
    """iniconfig's sdist: setuptools-scm build, src layout, tests in testing/ (named by its CI workflow)."""
    out = tmp_path / "iniconfig"
    assert main(["env", "build", "pypi:iniconfig==2.3.1", "--out", str(out)]) == 0
    env = json.loads((out / ENV_FILE).read_text())
    assert env["source"]["sdist"] == "iniconfig-2.3.1.tar.gz" and env["test_paths"] == ["testing"]
    assert ".github/workflows/test.yml: tests in testing" in env["recipe"]["found"]
    assert len(env["passing"]) >= 40 and not env["not_passing"]
    assert "testing/test_iniconfig.py::test_iscommentline_true[#qwe]" in env["passing"]
    # The environment imports the package from the repository: a change there fails the tests that cover it.
    mutated = tmp_path / "mutated"
    shutil.copytree(out / REPO_DIR, mutated)
    parse = mutated / "src" / "iniconfig" / "_parse.py"
    parse.write_text(parse.read_text().replace("return c in COMMENTCHARS", "return False"))
    outcomes = run_suite(str(mutated), str(out / ENV_DIR), env["test_paths"], "bwrap", 300)
    failing = {t for t, o in outcomes.items() if o != "passed"}
    assert "testing/test_iniconfig.py::test_iscommentline_true[#qwe]" in failing
    assert failing < set(env["passing"])


@pytest.mark.bwrap
def test_a_project_that_cannot_be_built_gets_a_report_naming_the_step(tmp_path, capsys):
    project = tmp_path / "project"
    _write(
        project,
        {
            "setup.py": "from setuptools import setup\nsetup(install_requires=['cwm-no-such-package==9.9'])\n",
            "tests/test_p.py": "def test_p():\n    pass\n",
        },
    )
    out = tmp_path / "out"
    assert main(["env", "build", str(project), "--out", str(out)]) == 2
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["ok"] is False and report["step"] == "download wheels" and "cwm-no-such-package" in report["why"]
    assert not (out / ENV_FILE).exists()
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"cwm env: error: {project}: download wheels failed:")
