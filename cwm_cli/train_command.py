"""`cwm train --config configs/X.py --workdir DIR [--config.field=value ...]`."""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "train",
        help="train (or resume) a model from an experiment config",
        description="Extra --config.FIELD=VALUE arguments override config fields.",
    )
    p.add_argument("--config", required=True, help="experiment config file (configs/*.py)")
    p.add_argument("--workdir", required=True, help="checkpoints, metrics and data of this run")
    p.add_argument("--coordinator", help="host:port of process 0, for multi-process runs")
    p.add_argument("--num-processes", type=int)
    p.add_argument("--process-id", type=int)
    p.set_defaults(run=run, accepts_overrides=True)


def run(args):
    from cwm_jax import distributed

    distributed.initialize(args.coordinator, args.num_processes, args.process_id)

    import jax

    from cwm_common.experiment_config import load_config
    from cwm_jax.train.loop import train

    config = load_config(args.config, args.overrides)
    result = train(config, args.workdir)
    print(f"process {jax.process_index()}/{jax.process_count()}: step {result['step']}, loss {result['loss']:.7f}")
    return 143 if result["stopped_early"] else 0
