"""`cwm gen-tasks mutate-fix --env DIR --out TASKS [--limit N] [--max-tried M] [--seed S]`: SWE tasks made by mutating a
real project's source in its environment (`cwm env build`) and keeping the mutations its tests catch; a
rerun skips what was tried. TASKS/report.json gives the counts and the mix of mutation kinds."""


def add_parser(subparsers):
    p = subparsers.add_parser("gen-tasks", help="generate SWE tasks from real projects")
    kinds = p.add_subparsers(dest="kind", required=True)
    m = kinds.add_parser("mutate-fix", help="tasks whose bug is a mutation of the project's source")
    m.add_argument("--env", required=True, help="a `cwm env build` folder")
    m.add_argument("--out", required=True, help="folder for the task folders, progress.jsonl and report.json")
    m.add_argument("--limit", type=int, help="stop after this many tasks are kept (all mutations by default)")
    m.add_argument("--max-tried", type=int, help="stop after trying this many mutations")
    m.add_argument("--seed", type=int, default=0, help="the order mutations are tried in")
    m.add_argument("--backend", default="bwrap", choices=("bwrap", "docker"))
    m.add_argument("--suite-timeout", type=float, default=300.0, help="seconds for one run of the suite")
    m.set_defaults(run=run)


def run(args):
    from cwm_cli.user_input import require_positive
    from cwm_tasks.mutate_fix import generate_mutate_fix

    require_positive(args, "--limit", "--max-tried")
    require_positive(args, "--suite-timeout", unit="number of seconds")
    generate_mutate_fix(args.env, args.out, args.limit, args.seed, args.max_tried, args.backend, args.suite_timeout)
