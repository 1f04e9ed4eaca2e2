"""`cwm train --config configs/X.py --workdir DIR [--config.field=value ...]`."""

from cwm_cli.distributed_args import add_distributed_args, initialize_distributed


def add_parser(subparsers):
    p = subparsers.add_parser(
        "train",
        help="train (or resume) a model from an experiment config",
        description="Extra --config.FIELD=VALUE arguments override config fields.",
    )
    p.add_argument("--config", required=True, help="experiment config file (configs/*.py)")
    p.add_argument("--workdir", required=True, help="checkpoints, metrics and data of this run")
    add_distributed_args(p)
    p.set_defaults(run=run, accepts_overrides=True)


def run(args):
    initialize_distributed(args)

    import jax

    from cwm_common.experiment_config import load_config
    from cwm_jax.train.loop import train

    config = load_config(args.config, args.overrides)
    result = train(config, args.workdir)
    print(f"process {jax.process_index()}/{jax.process_count()}: step {result['step']}, loss {result['loss']:.7f}")
    return 143 if result["stopped_early"] else 0
