"""`cwm trace`: run a Python entry point under the CWM tracer (in a sandbox) and print the trace."""

import json
import sys

from cwm_envs.sandbox import BACKENDS


def add_parser(subparsers):
    p = subparsers.add_parser("trace", help="trace a Python function or program in CWM's format")
    p.add_argument("file", help="Python source file")
    p.add_argument("--entry", help="function to call (omit to run the file as a program)")
    p.add_argument("--args", help="JSON array of positional arguments")
    p.add_argument("--kwargs", help="JSON object of keyword arguments")
    p.add_argument("--stdin", help="file whose contents the program reads as standard input")
    p.add_argument("--format", choices=("cwm", "json"), default="cwm")
    p.add_argument("--max-steps", type=int, default=10_000)
    p.add_argument("--timeout", type=float, default=5.0, help="seconds")
    p.add_argument("--memory-mb", type=int, default=1024)
    p.add_argument("--backend", default="bwrap", choices=BACKENDS, help="sandbox the code runs in")
    p.set_defaults(run=run)


def run(args):
    from cwm_cli.user_input import read_text, require_positive
    from cwm_common.errors import CwmError
    from cwm_data import call_args, trace_format
    from cwm_data.sandboxed_tracer import trace_once
    from cwm_data.trace_frames import TraceLimits

    require_positive(args, "--max-steps")
    require_positive(args, "--timeout", unit="number of seconds")
    require_positive(args, "--memory-mb", unit="number of MiB")
    source = read_text(args.file, "source file")
    stdin = read_text(args.stdin, "--stdin file") if args.stdin else None
    if args.entry is None and (args.args or args.kwargs):
        raise CwmError("--args/--kwargs need --entry (a whole program takes input through --stdin)")
    result = trace_once(
        source,
        args.entry,
        call_args.from_json(args.args, args.kwargs),
        stdin,
        TraceLimits(max_steps=args.max_steps, timeout_s=args.timeout, memory_mb=args.memory_mb),
        args.backend,
    )
    if result.status == "error":
        raise CwmError(f"{args.file}: {result.error}")
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=1))
    else:
        pieces = trace_format.prompt(result.source) + trace_format.render(result.frames, result.complete)
        sys.stdout.write(trace_format.to_text(pieces) + "\n")
    if not result.complete:
        print(f"cwm trace: incomplete trace ({result.status}) {result.error}".rstrip(), file=sys.stderr)
        return 1
    return 0
