"""What the launchers share: the command to run, given after `--`."""

import argparse


def add_command_argument(parser: argparse.ArgumentParser):
    parser.add_argument("--dry-run", action="store_true", help="print what would run, run nothing")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")


def command_of(parser: argparse.ArgumentParser, args) -> list[str]:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command after --")
    return command
