#!/usr/bin/env python3
"""Runs a cwm command on every worker of a Cloud TPU VM slice (one command, all hosts).

    python launch/tpu_pod.py --tpu my-v5p-128 --zone us-east5-a -- \
        cwm train --config configs/X.py --workdir /mnt/gcs/run
    python launch/tpu_pod.py ... --dry-run      # print the gcloud command, run nothing

Every worker runs `cd REPO && ./dev setup && CWM_DISTRIBUTED=auto <command>`; `./dev setup` installs TPU jax
there (it finds the TPU), and JAX then finds the slice's processes itself. The repository must be at --repo on
every worker (e.g. cloned by a startup script), and the workdir a path every worker shares: a bucket mounted
at the same place on each (gcsfuse) or a Filestore share, since run directories are plain paths.
"""

import argparse
import shlex
import subprocess
import sys

from launch_args import add_command_argument, command_of


def gcloud_command(tpu: str, zone: str, project: str | None, repo: str, command: list[str]) -> list[str]:
    remote = f"cd {shlex.quote(repo)} && ./dev setup && CWM_DISTRIBUTED=auto .venv/bin/{shlex.join(command)}"
    cmd = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", tpu, f"--zone={zone}", "--worker=all", f"--command={remote}"]
    return cmd + ([f"--project={project}"] if project else [])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tpu", required=True, help="TPU VM name")
    parser.add_argument("--zone", required=True)
    parser.add_argument("--project")
    parser.add_argument("--repo", default="~/cwm-jax", help="repository path on the workers")
    add_command_argument(parser)
    args = parser.parse_args(argv)
    command = command_of(parser, args)
    cmd = gcloud_command(args.tpu, args.zone, args.project, args.repo, command)
    if args.dry_run:
        print(shlex.join(cmd))
        return 0
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
