"""`cwm reward code --solution FILE --tests FILE [--entry-point NAME]`: grade a Python solution with its
unit tests (a check(candidate) function, HumanEval's form) in a sandbox; prints the result as JSON."""

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


def _read(path: str) -> str:
    from cwm_common.errors import CwmError

    if not os.path.exists(path):
        raise CwmError(f"{path}: file not found")
    with open(path) as f:
        return f.read()


def run(args):
    import ast

    from cwm_common.errors import CwmError
    from cwm_envs.sandbox import SandboxLimits, make_sandbox
    from cwm_envs.tasks.python_tests import grade_function

    solution, tests = _read(args.solution), _read(args.tests)
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
