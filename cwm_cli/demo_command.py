"""`cwm demo`: the embedded main job on a small preset."""


def add_parser(subparsers):
    p = subparsers.add_parser("demo", help="build a small CWM, run a forward and a few training steps")
    p.add_argument("--preset", default="cwm-tiny", help="model preset (configs/model_presets.py)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def run(args):
    from cwm_jax.demo import run_demo

    run_demo(args.preset, steps=args.steps, batch=args.batch, seq_len=args.seq_len, seed=args.seed)
