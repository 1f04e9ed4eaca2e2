"""`cwm debug FILE.py --entry NAME [--args JSON]`: CWM's neural debugger, interactive (or --full)."""

import sys

HELP = (
    "commands: s(tep) into, n(ext) over calls, o(ut) of the function, b(ack) one frame, p(rint) locals, "
    "r(esample) the last frame, f(ull) rest of the trace, q(uit)"
)


def add_parser(subparsers):
    from cwm_cli.model_args import add_model_args

    p = subparsers.add_parser("debug", help="predict a program's execution step by step with a model")
    p.add_argument("file")
    p.add_argument("--entry", required=True)
    p.add_argument("--args", help="JSON array of positional arguments (they start the trace)")
    p.add_argument("--kwargs", help="JSON object of keyword arguments")
    add_model_args(p)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--full", action="store_true", help="predict the whole trace and print it (no prompt)")
    p.set_defaults(run=run)


def run(args):
    import json

    from cwm_cli.model_args import load_model_and_tokenizer
    from cwm_common.errors import CwmError
    from cwm_jax.completion import ModelCompleter
    from cwm_jax.debugger import NeuralDebugger, describe

    try:
        source = open(args.file).read()
    except OSError as e:
        raise CwmError(f"{args.file}: {e.strerror}") from None
    try:
        positional = json.loads(args.args) if args.args else None
        named = json.loads(args.kwargs) if args.kwargs else None
    except json.JSONDecodeError as e:
        raise CwmError(f"--args/--kwargs: not valid JSON ({e.msg})") from None
    model, tokenizer = load_model_and_tokenizer(args)
    debugger = NeuralDebugger(
        ModelCompleter(model), tokenizer, source, args.entry, positional, named, temperature=args.temperature
    )
    for frame in debugger.frames:
        print(describe(frame))
    if args.full:
        for result in debugger.run_to_end():
            print(describe(result))
        return 0
    print(HELP)
    commands = {"s": debugger.step, "n": debugger.next, "r": debugger.resample}
    for line in _prompt_lines():
        command = line.strip()[:1]
        if command == "q":
            break
        if command in commands:
            print(describe(commands[command]()))
        elif command == "o":
            for result in debugger.out():
                print(describe(result))
        elif command == "b":
            dropped = debugger.back()
            print("dropped: " + (describe(dropped) if dropped else "nothing"))
        elif command == "p":
            for name, value in debugger.locals().items():
                print(f"  {name} = {value}")
        elif command == "f":
            for result in debugger.run_to_end():
                print(describe(result))
        else:
            print(HELP)
    return 0


def _prompt_lines():
    while True:
        if sys.stdin.isatty():
            print("(cwm-debug) ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            return
        yield line
