"""`cwm rl-actor --exchange DIR --actor K --actors N ...`: one RL actor process. `cwm rl` with
rl.actor_processes=N starts these itself; the command is public so its log and arguments can be read."""


def add_parser(subparsers):
    p = subparsers.add_parser("rl-actor", help="an RL actor process (started by `cwm rl`)")
    p.add_argument("--exchange", required=True, help="the learner's WORKDIR/exchange directory")
    p.add_argument("--actor", type=int, required=True, help="this actor's index k: it makes batches b % N == k")
    p.add_argument("--actors", type=int, required=True)
    p.add_argument("--first-batch", type=int, required=True)
    p.add_argument("--learner-pid", type=int, required=True, help="the actor exits once this process is gone")
    p.set_defaults(run=run)


def run(args):
    from cwm_rl.actors import run_actor_process

    run_actor_process(args.exchange, args.actor, args.actors, args.first_batch, args.learner_pid)
    return 0
