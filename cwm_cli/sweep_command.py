"""`cwm sweep --config configs/sweeps/toy.py --workdir DIR [--emit local|slurm|tpu_pod]`: a scaling-law sweep.
Without --emit every unfinished run trains here, one after another; with it, one command per unfinished run
is printed for a cluster. Either way the results table, DIR/fit.json and the plots come from what finished."""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "sweep",
        help="scaling-law sweep: run (or emit), collect, fit",
        description="Extra --config.FIELD=VALUE arguments override config fields.",
    )
    p.add_argument("--config", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument(
        "--emit",
        choices=("local", "slurm", "tpu_pod"),
        help="print one launch command per unfinished run instead of training here",
    )
    p.set_defaults(run=run, accepts_overrides=True)


def run(args):
    from cwm_common.experiment_config import load_config
    from cwm_jax.scaling.sweep_runner import run_sweep

    result = run_sweep(load_config(args.config, args.overrides), args.workdir, args.emit)
    for command in result["commands"]:
        print(command)
    return 0
