"""`cwm rl --config configs/rl_tiny.py --workdir DIR [--config.field=value ...]`: GRPO with sandbox rewards
(one process, or every process of a multi-process run: launch/local.py, slurm.py, tpu_pod.py)."""

from cwm_cli.distributed_args import add_distributed_args, initialize_distributed


def add_parser(subparsers):
    p = subparsers.add_parser(
        "rl",
        help="GRPO reinforcement learning with sandboxed rewards",
        description="Extra --config.FIELD=VALUE arguments override config fields.",
    )
    p.add_argument("--config", required=True)
    p.add_argument("--workdir", required=True)
    add_distributed_args(p)
    p.set_defaults(run=run, accepts_overrides=True)


def run(args):
    initialize_distributed(args)
    from cwm_common.experiment_config import load_config
    from cwm_rl.loop import run_rl

    result = run_rl(load_config(args.config, args.overrides), args.workdir)
    print(f"RL finished at step {result['step']}: mean reward {result['reward_mean']:+.3f}")
    return 0
