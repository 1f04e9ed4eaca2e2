#!/usr/bin/env python3
"""Runs a cwm command as N cooperating JAX processes on this machine (CPU devices), like a small cluster.

    python launch/local.py --num-processes 2 --cpu-devices 2 -- cwm train --config configs/tiny.py --workdir runs/x
    python launch/local.py ... --dry-run       # print each process's environment and command, run nothing

Each process gets CWM_COORDINATOR_ADDRESS / CWM_NUM_PROCESSES / CWM_PROCESS_ID / CWM_CPU_DEVICES, which
`cwm_jax.distributed.initialize` reads. Output lines are prefixed with [pN]; the exit code is the worst one.
"""

import argparse
import os
import shlex
import socket
import subprocess
import sys
import threading

from launch_args import add_command_argument, command_of


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_envs(num_processes: int, cpu_devices: int, port: int) -> list[dict[str, str]]:
    return [
        {
            "CWM_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
            "CWM_NUM_PROCESSES": str(num_processes),
            "CWM_PROCESS_ID": str(i),
            "CWM_CPU_DEVICES": str(cpu_devices),
            "JAX_PLATFORMS": "cpu",
        }
        for i in range(num_processes)
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-processes", type=int, default=2)
    parser.add_argument("--cpu-devices", type=int, default=1, help="CPU devices per process")
    parser.add_argument("--port", type=int, default=0, help="coordinator port (0: a free one)")
    add_command_argument(parser)
    args = parser.parse_args(argv)
    command = command_of(parser, args)
    envs = process_envs(args.num_processes, args.cpu_devices, args.port or free_port())
    if args.dry_run:
        for env in envs:
            print(" ".join(f"{k}={v}" for k, v in env.items()), shlex.join(command))
        return 0
    procs = []
    for i, env in enumerate(envs):
        full_env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | env
        proc = subprocess.Popen(command, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        thread = threading.Thread(target=_relay, args=(proc, f"[p{i}] "), daemon=True)
        thread.start()
        procs.append((proc, thread))
    codes = []
    for proc, thread in procs:
        codes.append(proc.wait())
        thread.join()
    return max(codes, key=abs)


def _relay(proc, prefix):
    for line in proc.stdout:
        sys.stdout.write(prefix + line)
        sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
