"""SWE-bench-style instances become task folders from a local clone at their base commit, grade as SWE tasks,
and export back to the same instances; bad instances are counted and the import goes on."""

import json
import subprocess

import pytest

from cwm_cli.main import main

CALC = "def divide(a, b):\n    return a / b\n"
FIXED = "def divide(a, b):\n    if b == 0:\n        return None\n    return a / b\n"
TESTS = "from calc import divide\n\n\ndef test_divide():\n    assert divide(6, 3) == 2\n"
NEW_TEST = "\n\ndef test_divide_by_zero():\n    assert divide(1, 0) is None\n"


def _git(repo, *args, text_input=None):
    return subprocess.run(["git", "-C", str(repo), *args], input=text_input, capture_output=True, text=True, check=True)


def _diff(repo, path, new_text):
    """A git diff of `path` changed to new_text, and the file put back."""
    old = (repo / path).read_text()
    (repo / path).write_text(new_text)
    patch = _git(repo, "diff").stdout
    (repo / path).write_text(old)
    return patch


@pytest.fixture
def instances(tmp_path):
    clone = tmp_path / "clones" / "acme__calc"
    clone.mkdir(parents=True)
    _git(clone, "init", "-q")
    (clone / "calc.py").write_text(CALC)
    (clone / "test_calc.py").write_text(TESTS)
    _git(clone, "add", "-A")
    _git(clone, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    base = _git(clone, "rev-parse", "HEAD").stdout.strip()
    instance = {
        "instance_id": "acme__calc-1",
        "repo": "acme/calc",
        "base_commit": base,
        "patch": _diff(clone, "calc.py", FIXED),
        "test_patch": _diff(clone, "test_calc.py", TESTS + NEW_TEST),
        # SWE-bench's files hold the test lists as JSON strings.
        "FAIL_TO_PASS": json.dumps(["test_calc.py::test_divide_by_zero"]),
        "PASS_TO_PASS": json.dumps(["test_calc.py::test_divide"]),
        "problem_statement": "divide(a, 0) raises; it should return None.",
        "image": "swebench/sweb.eval.x86_64.acme__calc-1:latest",
    }
    lines = [
        json.dumps(instance),
        json.dumps({**instance, "instance_id": "acme__calc-2", "repo": "acme/missing"}),
        json.dumps({k: v for k, v in instance.items() if k != "patch"}),
        "not json",
    ]
    path = tmp_path / "instances.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path, instance, tmp_path / "clones"


@pytest.mark.bwrap
def test_instances_import_grade_and_export_back(instances, tmp_path, capsys):
    path, instance, clones = instances
    tasks = tmp_path / "tasks"
    command = ["gen-tasks", "issue-fix", "--instances", str(path), "--out", str(tasks), "--repos", str(clones)]
    assert main(command) == 0
    report = json.loads((tasks / "report.json").read_text())
    assert report["imported"] == 1 and report["failed"] == 3
    assert [f.split(": ", 1)[1] for f in report["failures"]] == [
        f"no clone of acme/missing under {clones} (looked for acme__missing, missing)",
        "missing 'patch'",
        "not JSON (Expecting value: line 1 column 1 (char 0))",
    ]
    folder = tasks / "acme__calc-1"
    assert (folder / "repo" / "calc.py").read_text() == CALC and not (folder / "repo" / ".git").exists()
    capsys.readouterr()
    for patch, resolved in ((instance["patch"], True), (_unrelated(), False)):
        (tmp_path / "p.diff").write_text(patch)
        graded = {}
        for parser in ("runner", "swebench"):
            main(["reward", "swe", "--task", str(folder), "--patch", str(tmp_path / "p.diff"), "--log-parser", parser])
            graded[parser] = json.loads(capsys.readouterr().out)
        # SWE-bench's log parser reading the run's pytest log agrees with the runner's per-test report.
        assert graded["runner"]["resolved"] is graded["swebench"]["resolved"] is resolved
        assert [(t["name"], t["passed"]) for t in graded["runner"]["tests"]] == [
            (t["name"], t["passed"]) for t in graded["swebench"]["tests"]
        ]
    # A rerun skips what is there; export gives the instance back (its test lists as lists).
    assert main(command) == 0 and json.loads((tasks / "report.json").read_text())["already imported"] == 1
    exported = tmp_path / "out.jsonl"
    assert main(["gen-tasks", "export", "--tasks", str(tasks), "--out", str(exported)]) == 0
    [line] = exported.read_text().splitlines()
    want = {**instance, **{k: json.loads(instance[k]) for k in ("FAIL_TO_PASS", "PASS_TO_PASS")}}
    assert json.loads(line) == want


def _unrelated():
    return (
        "diff --git a/notes.py b/notes.py\nnew file mode 100644\n--- /dev/null\n+++ b/notes.py\n@@ -0,0 +1 @@\n+x = 1\n"
    )
