"""`cwm reward code --solution FILE --tests FILE [--entry-point NAME]`: grade a Python solution with its
unit tests (a check(candidate) function, HumanEval's form) in a sandbox; prints the result as JSON.

`cwm reward swe --task DIR --patch FILE [--artifacts OUT]`: grade a patch for a SWE task folder (task.json
+ repo/) by FAIL_TO_PASS / PASS_TO_PASS, as the SWE-bench harness does: prints the report, and writes
report.json, test_output.txt and patch.diff to OUT. The report's `failure_class` keeps infrastructure
errors (the sandbox failed) apart from unresolved patches."""

import json
import os


def add_parser(subparsers):
    p = subparsers.add_parser("reward", help="compute verifiable rewards")
    kinds = p.add_subparsers(dest="kind", required=True)
    code = kinds.add_parser("code", help="unit-test a Python solution")
    code.add_argument("--solution", required=True)
    code.add_argument("--tests", required=True, help="Python file defining check(candidate)")
    code.add_argument("--entry-point", help="function to test (default: the solution's last top-level def)")
    code.add_argument("--backend", default="bwrap", choices=("bwrap", "docker"))
    code.add_argument("--timeout", type=float, default=30.0)
    code.set_defaults(run=run)
    swe = kinds.add_parser("swe", help="grade a patch for a SWE task by FAIL_TO_PASS / PASS_TO_PASS")
    swe.add_argument("--task", required=True, help="task folder: task.json and repo/ (e.g. data/swe_tasks/NAME)")
    swe.add_argument("--patch", required=True, help="the diff to grade")
    swe.add_argument("--artifacts", help="folder for report.json, test_output.txt and patch.diff")
    swe.add_argument("--backend", default="bwrap", choices=("bwrap", "docker"))
    swe.add_argument("--timeout", type=float, default=300.0)
    swe.add_argument(
        "--log-parser",
        default="runner",
        choices=("runner", "swebench"),
        help="each test's outcome from the runner's report, or from the pytest log by SWE-bench's parser",
    )
    swe.set_defaults(run=run_swe)


def run(args):
    import ast

    from cwm_cli.user_input import read_text, require_positive
    from cwm_common.errors import CwmError
    from cwm_envs.sandbox import SandboxLimits
    from cwm_envs.sandbox_factory import make_sandbox
    from cwm_tasks.humaneval import grade_function

    require_positive(args, "--timeout", unit="number of seconds")
    solution, tests = read_text(args.solution, "--solution file"), read_text(args.tests, "--tests file")
    entry = args.entry_point
    if entry is None:
        try:
            defs = [n.name for n in ast.parse(solution).body if isinstance(n, ast.FunctionDef)]
        except SyntaxError as e:
            raise CwmError(f"{args.solution}:{e.lineno}: {e.msg} (give --entry-point to grade it anyway)") from None
        if not defs:
            raise CwmError(f"{args.solution}: defines no function; give --entry-point")
        entry = defs[-1]
    if "def check(" not in tests:
        raise CwmError(f"{args.tests}: must define check(candidate)")
    sandbox = make_sandbox(args.backend, SandboxLimits(timeout_s=args.timeout))
    try:
        result = grade_function(sandbox, solution, tests, entry, timeout=args.timeout)
    finally:
        sandbox.close()
    print(json.dumps(result.to_json(), indent=1))
    return 0


def run_swe(args):
    from cwm_cli.user_input import read_text, require_positive
    from cwm_envs.sandbox import SandboxLimits
    from cwm_envs.sandbox_factory import make_sandbox
    from cwm_tasks.swe import SweTask, grade_swe
    from cwm_tasks.swebench_logs import swebench_log_parser

    require_positive(args, "--timeout", unit="number of seconds")
    task, patch = SweTask.load(args.task), read_text(args.patch, "--patch file")
    log_parser = swebench_log_parser(task.repo) if args.log_parser == "swebench" else None
    try:
        sandbox = make_sandbox(args.backend, SandboxLimits(timeout_s=args.timeout), view=task.sandbox_view())
        try:
            result = grade_swe(sandbox, task, patch, timeout=args.timeout, log_parser=log_parser).to_json()
        finally:
            sandbox.close()
        failure_class = None if result["status"] == "passed" else "unresolved"
    except Exception as e:  # the sandbox, not the patch: never reported as unresolved
        result = {
            "reward": None,
            "status": "infra_error",
            "tests": [],
            "seconds": 0.0,
            "log": f"{type(e).__name__}: {e}",
        }
        failure_class = "infra_error"
    report = {
        "instance_id": task.instance_id,
        "resolved": result["status"] == "passed",
        "failure_class": failure_class,
        **result,
    }
    if args.artifacts:
        os.makedirs(args.artifacts, exist_ok=True)
        for name, text in (
            ("report.json", json.dumps(report, indent=1)),
            ("test_output.txt", result["log"]),
            ("patch.diff", patch),
        ):
            with open(os.path.join(args.artifacts, name), "w") as f:
                f.write(text)
    print(json.dumps(report, indent=1))
    return 0 if failure_class != "infra_error" else 1
