"""`cwm env build SOURCE --out DIR [--backend bwrap|docker]`: an executable environment for a Python project
(a folder, or `pypi:NAME==VERSION`), its suite run in a sandbox, the passing tests recorded in DIR/env.json.
A project that cannot be built gets DIR/report.json naming the failed step, and a one-line error."""


def add_parser(subparsers):
    p = subparsers.add_parser("env", help="executable environments for real Python projects")
    actions = p.add_subparsers(dest="action", required=True)
    b = actions.add_parser("build", help="build a project's environment and record the tests that pass in it")
    b.add_argument("source", help="a project folder, or pypi:NAME==VERSION (its sdist)")
    b.add_argument("--out", required=True, help="the environment's folder")
    b.add_argument("--backend", default="bwrap", choices=("bwrap", "docker"))
    b.add_argument("--suite-timeout", type=float, default=900.0, help="seconds for the whole test suite")
    b.set_defaults(run=run)


def run(args):
    from cwm_cli.user_input import require_positive
    from cwm_tasks.project_env import build_project_env

    require_positive(args, "--suite-timeout", unit="number of seconds")
    build_project_env(args.source, args.out, args.backend, suite_timeout=args.suite_timeout)
