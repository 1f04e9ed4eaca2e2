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
from cwm_tasks.mutate_fix import source_files
from cwm_tasks.mutations import unified_patch
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
def test_an_environment_for_a_pypi_package_runs_its_suite_against_its_source(inflection_env, tmp_path):
    env = json.loads((inflection_env / ENV_FILE).read_text())
    assert env["source"]["sdist"] == "inflection-0.5.1.tar.gz" and env["recipe"]["name"] == "inflection"
    assert len(env["passing"]) > 400 and not env["not_passing"]
    assert "test_inflection.py::test_underscore[ApplicationController-application_controller]" in env["passing"]
    # The environment imports the package from the repository: a change there fails the tests that cover it.
    mutated = tmp_path / "mutated"
    shutil.copytree(inflection_env / REPO_DIR, mutated)
    source = mutated / "inflection" / "__init__.py"
    source.write_text(source.read_text().replace("return word.lower()", "return word"))
    outcomes = run_suite(str(mutated), str(inflection_env / ENV_DIR), env["test_paths"], "bwrap", 300)
    failing = {t for t, o in outcomes.items() if o != "passed"}
    assert "test_inflection.py::test_underscore[ApplicationController-application_controller]" in failing
    assert failing < set(env["passing"])


@pytest.mark.bwrap
def test_an_environment_from_pyproject_with_a_dependency_group_and_tests_inside_the_package(tmp_path):
    """toolz's sdist: a pyproject build (setuptools with a versioning plugin), its test tools in a PEP 735
    group, pytest's testpaths naming the package, whose tests live in subpackages."""
    out = tmp_path / "toolz"
    assert main(["env", "build", "pypi:toolz==1.2.0", "--out", str(out)]) == 0
    env = json.loads((out / ENV_FILE).read_text())
    assert env["test_paths"] == ["toolz"] and "pytest" in env["recipe"]["test_requires"]
    assert "pyproject.toml: dependency group 'test' coverage, pycodestyle, pytest" in env["recipe"]["found"]
    assert len(env["passing"]) > 180 and "toolz/tests/test_itertoolz.py::test_groupby" in env["passing"]
    assert {p.split("/")[1] for p in env["passing"]} == {"tests", "sandbox"}
    sources = source_files(str(out / REPO_DIR), env["test_paths"])
    assert "toolz/itertoolz.py" in sources and not any("/tests/" in p for p in sources)


@pytest.mark.bwrap
def test_mutate_fix_tasks_grade_plus_one_with_their_gold_patch_and_minus_one_without(
    inflection_env, inflection_tasks, tmp_path, capsys
):
    env = json.loads((inflection_env / ENV_FILE).read_text())
    tasks, command = inflection_tasks
    report = json.loads((tasks / "report.json").read_text())
    assert report["kept"] == 2 and report["tried"] == sum(k["tried"] for k in report["kinds"].values())
    folders = sorted(p for p in tasks.iterdir() if p.is_dir())
    assert len(folders) == 2
    for folder in folders:
        task = json.loads((folder / "task.json").read_text())
        # Every FAIL_TO_PASS test passed before the mutation; with PASS_TO_PASS they are all that passed.
        assert task["FAIL_TO_PASS"] and set(task["FAIL_TO_PASS"]) <= set(env["passing"])
        assert sorted(task["FAIL_TO_PASS"] + task["PASS_TO_PASS"]) == env["passing"]
        path = task["mutation"]["path"]
        gold, unrelated = tmp_path / "gold.diff", tmp_path / "unrelated.diff"
        gold.write_text(task["gold_patch"])
        mutated = (folder / REPO_DIR / path).read_text()
        unrelated.write_text(unified_patch(path, mutated, "# an unrelated change\n" + mutated))
        capsys.readouterr()
        for patch, resolved in ((gold, True), (unrelated, False)):
            main(["reward", "swe", "--task", str(folder), "--patch", str(patch)])
            graded = json.loads(capsys.readouterr().out)
            assert graded["resolved"] is resolved and graded["reward"] == (1.0 if resolved else -1.0)
        failed = {t["name"] for t in graded["tests"] if not t["passed"]}
        assert failed == set(task["FAIL_TO_PASS"])
    # A rerun over the finished output tries nothing again.
    progress = (tasks / "progress.jsonl").read_text()
    assert main(command) == 0
    assert (tasks / "progress.jsonl").read_text() == progress


@pytest.mark.docker
def test_the_docker_backend_builds_grades_and_generates_the_same_way(tmp_path, capsys):
    env_dir, tasks = tmp_path / "inflection", tmp_path / "tasks"
    assert main(["env", "build", "pypi:inflection==0.5.1", "--out", str(env_dir), "--backend", "docker"]) == 0
    assert len(json.loads((env_dir / ENV_FILE).read_text())["passing"]) == 455
    command = ["gen-tasks", "mutate-fix", "--env", str(env_dir), "--out", str(tasks), "--limit", "1"]
    assert main([*command, "--backend", "docker"]) == 0
    [folder] = [p for p in tasks.iterdir() if p.is_dir()]
    (tmp_path / "gold.diff").write_text(json.loads((folder / "task.json").read_text())["gold_patch"])
    capsys.readouterr()
    main(["reward", "swe", "--task", str(folder), "--patch", str(tmp_path / "gold.diff"), "--backend", "docker"])
    assert json.loads(capsys.readouterr().out)["reward"] == 1.0


@pytest.mark.bwrap
def test_a_patch_cannot_reach_the_trusted_runner_through_the_environments_path(inflection_tasks, tmp_path, capsys):
    """The environment's editable install puts /work/repo on sys.path through a .pth file, and importing pytest
    looks for modules (msvcrt, org) that exist nowhere: a patch adding them would run in the runner before it
    reads the nonce, and could forge the report. The runner loads pytest with no .pth file applied."""
    tasks, _ = inflection_tasks
    folder = sorted(p for p in tasks.iterdir() if p.is_dir())[0]
    task = json.loads((folder / "task.json").read_text())
    passed = {t: "passed" for t in task["FAIL_TO_PASS"] + task["PASS_TO_PASS"]}
    forge = (
        "import json, os, sys\n"
        "nonce = json.loads(sys.stdin.read())['nonce']\n"
        f"report = {{'outcomes': {passed!r}, 'tampered': [], 'finished': True}}\n"
        "os.write(1, (nonce + ' ' + json.dumps(report) + '\\n').encode())\n"
        "os._exit(0)\n"
    )
    patch = "".join(unified_patch(name, "", forge) for name in ("msvcrt.py", "org/__init__.py"))
    patch = patch.replace("--- a/msvcrt.py", "new file mode 100644\n--- /dev/null").replace(
        "--- a/org/__init__.py", "new file mode 100644\n--- /dev/null"
    )
    (tmp_path / "forge.diff").write_text(patch)
    capsys.readouterr()
    main(["reward", "swe", "--task", str(folder), "--patch", str(tmp_path / "forge.diff")])
    graded = json.loads(capsys.readouterr().out)
    assert graded["resolved"] is False and graded["reward"] == -1.0


@pytest.mark.bwrap
def test_suites_that_fail_are_counted_and_the_run_goes_on(inflection_env, tmp_path):
    """A suite that outlives its deadline is killed with its sandbox: each mutation so tried is counted."""
    tasks = tmp_path / "tasks"
    command = ["gen-tasks", "mutate-fix", "--env", str(inflection_env), "--out", str(tasks), "--suite-timeout", "0.2"]
    assert main([*command, "--max-tried", "3"]) == 0
    report = json.loads((tasks / "report.json").read_text())
    assert report["kept"] == 0 and report["tried"] == report["outcomes"]["suite_failed"] == 3
    assert all("timed out" in json.loads(line)["why"] for line in (tasks / "progress.jsonl").read_text().splitlines())


def test_a_project_pytest_itself_imports_is_refused(tmp_path):
    """iniconfig is a dependency of pytest: the graders' runner would import its code before any test."""
    out = tmp_path / "iniconfig"
    assert main(["env", "build", "pypi:iniconfig==2.3.1", "--out", str(out)]) == 2
    report = json.loads((out / REPORT_FILE).read_text())
    assert report["step"] == "read how it installs and tests" and "pytest's own dependencies" in report["why"]


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
