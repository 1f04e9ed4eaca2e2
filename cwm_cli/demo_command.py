"""`cwm demo`: the whole story on the embedded default (trace, train a tiny CWM, GRPO), on CPU."""


def add_parser(subparsers):
    p = subparsers.add_parser("demo", help="trace the shipped corpus, train a tiny CWM, then run GRPO on it")
    p.add_argument("--workdir", default="runs/demo", help="where the stages keep their data and checkpoints")
    p.add_argument("--train-steps", type=int, default=150)
    p.add_argument("--rl-steps", type=int, default=30)
    p.add_argument("--rl-mode", choices=("async", "sync"), default="async")
    p.set_defaults(run=run)


def run(args):
    from cwm_rl.story import run_story

    run_story(args.workdir, args.train_steps, args.rl_steps, args.rl_mode)
