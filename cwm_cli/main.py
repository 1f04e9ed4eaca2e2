"""The `cwm` command: one entry point, a subcommand per job."""

import argparse
import sys

from cwm_cli import (
    convert_command,
    debug_command,
    demo_command,
    env_command,
    eval_command,
    gen_tasks_command,
    gen_traces_command,
    generate_command,
    plan_command,
    repro_command,
    reward_command,
    rl_actor_command,
    rl_command,
    sandbox_command,
    sweep_command,
    trace_command,
    train_command,
)
from cwm_common.errors import CwmError

SUBCOMMANDS = (
    demo_command,
    train_command,
    sweep_command,
    repro_command,
    rl_command,
    rl_actor_command,
    plan_command,
    convert_command,
    generate_command,
    debug_command,
    eval_command,
    trace_command,
    gen_traces_command,
    sandbox_command,
    reward_command,
    env_command,
    gen_tasks_command,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cwm", description="CWM in JAX: train, convert, sample, evaluate.", allow_abbrev=False
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    bad = [a for a in extra if not a.startswith("--config.")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)} (config overrides look like --config.FIELD=VALUE)")
    args.overrides = extra
    try:
        return args.run(args) or 0
    except CwmError as e:
        # A user mistake: one line naming what is wrong, no traceback.
        print(f"cwm {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
