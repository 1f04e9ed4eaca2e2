"""`cwm rl-actor --exchange DIR --actor K`: one RL actor process. `cwm rl` with rl.actor_processes=N starts
these itself, or with rl.launch_actors False prints the commands to run on hosts that share DIR."""


def add_parser(subparsers):
    p = subparsers.add_parser("rl-actor", help="an RL actor process (started by `cwm rl`, or by you on other hosts)")
    p.add_argument("--exchange", required=True, help="the learner's WORKDIR/exchange directory")
    p.add_argument("--actor", type=int, required=True, help="this actor's index k: it makes batches b % N == k")
    p.add_argument("--learner-pid", type=int, default=None, help="on the learner's host: exit once it is gone")
    p.add_argument(
        "--learner-timeout", type=float, default=60.0, help="exit once the learner's heartbeat is this many seconds old"
    )
    p.set_defaults(run=run)


def run(args):
    from cwm_rl.actors import run_actor_process

    run_actor_process(args.exchange, args.actor, args.learner_pid, args.learner_timeout)
    return 0
