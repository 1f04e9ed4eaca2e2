"""SWE task generators.

`cwm gen-tasks mutate-fix --env DIR --out TASKS [--limit N] [--max-tried M] [--seed S]`: tasks made by
mutating a real project's source in its environment (`cwm env build`) and keeping the mutations its tests
catch; a rerun skips what was tried. TASKS/report.json gives the counts and the mix of mutation kinds.
`cwm gen-tasks issue-fix --instances FILE.jsonl --out TASKS --repos CLONES [--env DIR]`: tasks from
SWE-bench-style instances. `cwm gen-tasks export --tasks TASKS --out FILE.jsonl`: any task folders back to
instances."""


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
    i = kinds.add_parser("issue-fix", help="tasks from SWE-bench-style instances (JSONL)")
    i.add_argument("--instances", required=True, help="the instances, one JSON object per line")
    i.add_argument("--out", required=True, help="folder for the task folders and report.json")
    i.add_argument("--repos", required=True, help="local clones, named owner__name (as SWE-bench does) or name")
    i.add_argument("--env", help="a `cwm env build` folder the tasks' tests run in")
    i.set_defaults(run=run_issue_fix)
    e = kinds.add_parser("export", help="task folders back to SWE-bench-style instances (JSONL)")
    e.add_argument("--tasks", required=True, help="a folder of task folders")
    e.add_argument("--out", required=True, help="the JSONL file to write")
    e.set_defaults(run=run_export)


def run(args):
    from cwm_cli.user_input import require_positive
    from cwm_tasks.mutate_fix import generate_mutate_fix

    require_positive(args, "--limit", "--max-tried")
    require_positive(args, "--suite-timeout", unit="number of seconds")
    generate_mutate_fix(args.env, args.out, args.limit, args.seed, args.max_tried, args.backend, args.suite_timeout)


def run_issue_fix(args):
    from cwm_tasks.issue_fix import import_instances

    import_instances(args.instances, args.out, args.repos, args.env)


def run_export(args):
    from cwm_tasks.issue_fix import export_tasks

    print(f"{export_tasks(args.tasks, args.out)} instances written to {args.out}")
