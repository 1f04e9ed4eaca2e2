"""`cwm gen-traces`: write trace corpora as ArrayRecord shards, with counts of kept and dropped traces."""

import glob
import os

from cwm_envs.sandbox import BACKENDS


def add_parser(subparsers):
    p = subparsers.add_parser("gen-traces", help="generate execution-trace shards from functions, programs or a repo")
    p.add_argument("kind", choices=("functions", "programs", "repo"))
    p.add_argument("paths", nargs="+", help="function modules / program files (or folders of them) / a repo folder")
    p.add_argument("--out", required=True, help="output folder for shards and the report")
    p.add_argument("--per-function", type=int, default=8, help="inputs per function (examples, then fuzzed)")
    p.add_argument("--max-depth", type=int, default=None, help="calls below the entry point to trace")
    p.add_argument("--max-steps", type=int, default=10_000)
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per trace")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-mb", type=int, default=1024, help="per trace")
    p.add_argument("--backend", default="bwrap", choices=BACKENDS, help="sandbox the code runs in")
    p.add_argument(
        "--requirements", help="repo: pip requirements of its tests (default: the repo's requirements.txt, if any)"
    )
    p.add_argument("--env", help="repo: folder for the repo's Python environment (default: OUT/python-env)")
    p.add_argument("--suite-timeout", type=float, default=600.0, help="repo: seconds for the whole suite")
    p.set_defaults(run=run)


def _python_files(paths: list[str]) -> list[str]:
    from cwm_common.errors import CwmError

    files = []
    for path in paths:
        if os.path.isdir(path):
            files += sorted(glob.glob(os.path.join(path, "*.py")))
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise CwmError(f"{path}: no such file or folder")
    return files


def run(args):
    from cwm_cli.user_input import require_positive
    from cwm_common.errors import CwmError
    from cwm_data.generators.corpus_jobs import function_jobs, program_jobs
    from cwm_data.generators.repo_traces import generate_repo_traces, repo_test_requirements
    from cwm_data.generators.trace_jobs import run_jobs
    from cwm_data.trace_frames import TraceLimits
    from cwm_envs.python_env import build_python_env

    require_positive(args, "--per-function", "--max-steps", "--workers")
    require_positive(args, "--timeout", "--suite-timeout", unit="number of seconds")
    require_positive(args, "--memory-mb", unit="number of MiB")
    limits = TraceLimits(
        max_steps=args.max_steps, timeout_s=args.timeout, max_depth=args.max_depth, memory_mb=args.memory_mb
    )
    os.makedirs(args.out, exist_ok=True)
    if args.kind == "repo":
        if len(args.paths) != 1 or not os.path.isdir(args.paths[0]):
            raise CwmError("gen-traces repo takes one repository folder")
        repo = args.paths[0]
        env = build_python_env(
            repo_test_requirements(repo, args.requirements),
            args.env or os.path.join(args.out, "python-env"),
            args.backend,
        )
        generate_repo_traces(repo, env, args.out, limits, suite_timeout_s=args.suite_timeout, backend=args.backend)
    elif args.kind == "functions":
        jobs, skipped = function_jobs(_python_files(args.paths), args.per_function, args.seed)
        for name in skipped:
            print(f"skipped {name}: no EXAMPLES entry and no annotations to fuzz from")
        run_jobs(jobs, args.out, "functions", limits, args.workers, backend=args.backend)
    else:
        run_jobs(
            program_jobs(_python_files(args.paths)), args.out, "programs", limits, args.workers, backend=args.backend
        )
