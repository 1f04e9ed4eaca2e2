"""`cwm sandbox exec [--backend B] [--timeout S] -- CMD ...`: run a command in a fresh sandbox.

The command's stdout and stderr pass through (cut at --max-output bytes each); the exit status is the
command's, 124 when it ran out of time, 125 when its output was cut.
"""

import sys

OUTPUT_CUT_EXIT = 125


def add_parser(subparsers):
    p = subparsers.add_parser("sandbox", help="run commands in a sandbox")
    actions = p.add_subparsers(dest="action", required=True)
    e = actions.add_parser("exec", help="run one command in a fresh sandbox")
    e.add_argument("--backend", default="bwrap", choices=("bwrap", "docker"))
    e.add_argument("--timeout", type=float, default=30.0)
    e.add_argument("--memory-mb", type=int, default=1024)
    e.add_argument("--max-output", type=int, default=1 << 20, help="bytes per stream")
    e.add_argument("--stdin", action="store_true", help="pass this process's stdin to the command")
    # dest argv: `command` is main's name for the subcommand, which its error lines start with
    e.add_argument("argv", nargs="+", metavar="command", help="the command (after --)")
    e.set_defaults(run=run)


def run(args):
    from cwm_cli.user_input import require_positive
    from cwm_envs.sandbox import SandboxLimits
    from cwm_envs.sandbox_factory import make_sandbox

    require_positive(args, "--timeout", unit="number of seconds")
    require_positive(args, "--memory-mb", unit="number of MiB")
    require_positive(args, "--max-output", unit="number of bytes")
    limits = SandboxLimits(memory_mb=args.memory_mb, timeout_s=args.timeout, max_output_bytes=args.max_output)
    sandbox = make_sandbox(args.backend, limits)
    try:
        result = sandbox.exec(args.argv, stdin=sys.stdin.buffer.read() if args.stdin else None)
    finally:
        sandbox.close()
    sys.stdout.buffer.write(result.stdout)
    sys.stderr.buffer.write(result.stderr)
    sys.stdout.flush()
    if result.timed_out:
        print(f"cwm sandbox: timed out after {args.timeout:g}s", file=sys.stderr)
        return 124
    if result.truncated:
        print(f"cwm sandbox: output cut at {args.max_output} bytes", file=sys.stderr)
        return OUTPUT_CUT_EXIT
    return result.exit_code
