"""`cwm rl --config configs/rl_tiny.py --workdir DIR [--config.field=value ...]`: GRPO with sandbox rewards."""


def add_parser(subparsers):
    p = subparsers.add_parser(
        "rl",
        help="GRPO reinforcement learning with sandboxed rewards",
        description="Extra --config.FIELD=VALUE arguments override config fields.",
    )
    p.add_argument("--config", required=True)
    p.add_argument("--workdir", required=True)
    p.set_defaults(run=run, accepts_overrides=True)


def run(args):
    from cwm_common.experiment_config import load_config
    from cwm_rl.loop import run_rl

    result = run_rl(load_config(args.config, args.overrides), args.workdir)
    print(f"RL finished at step {result['step']}: mean reward {result['reward_mean']:+.3f}")
    return 0
