#!/usr/bin/env python3
"""Submits a cwm command to a SLURM GPU cluster: one process per node, each using all of its GPUs.

    python launch/slurm.py --nodes 4 --gpus-per-node 8 --partition gpu -- \
        cwm train --config configs/X.py --workdir /shared/run
    python launch/slurm.py ... --dry-run        # print the batch script, submit nothing

The script runs `srun` with CWM_DISTRIBUTED=auto, so JAX reads the SLURM environment to find its peers.
"""

import argparse
import shlex
import subprocess
import sys
import tempfile

from launch_args import add_command_argument, command_of

TEMPLATE = """#!/bin/bash
#SBATCH --job-name={job_name}
#SBATCH --nodes={nodes}
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node={gpus}
#SBATCH --cpus-per-task={cpus}
#SBATCH --time={time}
{partition}#SBATCH --output={log_dir}/%x-%j.out
set -euo pipefail
cd {repo}
./dev setup
export CWM_DISTRIBUTED=auto
# XLA flags that help NVIDIA GPUs overlap communication with compute.
export XLA_FLAGS="--xla_gpu_enable_latency_hiding_scheduler=true ${{XLA_FLAGS:-}}"
srun --kill-on-bad-exit=1 .venv/bin/{command}
"""


def batch_script(
    nodes: int,
    gpus: int,
    cpus: int,
    time: str,
    partition: str | None,
    job_name: str,
    repo: str,
    log_dir: str,
    command: list[str],
) -> str:
    return TEMPLATE.format(
        job_name=job_name,
        nodes=nodes,
        gpus=gpus,
        cpus=cpus,
        time=time,
        repo=shlex.quote(repo),
        partition=f"#SBATCH --partition={partition}\n" if partition else "",
        log_dir=log_dir,
        command=shlex.join(command),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, required=True)
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--cpus-per-task", type=int, default=32)
    parser.add_argument("--time", default="24:00:00")
    parser.add_argument("--partition")
    parser.add_argument("--job-name", default="cwm")
    parser.add_argument("--repo", default=".", help="repository path on the nodes (a shared filesystem)")
    parser.add_argument("--log-dir", default="slurm-logs")
    add_command_argument(parser)
    args = parser.parse_args(argv)
    command = command_of(parser, args)
    script = batch_script(
        args.nodes,
        args.gpus_per_node,
        args.cpus_per_task,
        args.time,
        args.partition,
        args.job_name,
        args.repo,
        args.log_dir,
        command,
    )
    if args.dry_run:
        print(script, end="")
        return 0
    with tempfile.NamedTemporaryFile("w", suffix=".sbatch", delete=False) as f:
        f.write(script)
    return subprocess.call(["sbatch", f.name])


if __name__ == "__main__":
    sys.exit(main())
