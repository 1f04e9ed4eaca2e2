"""Multi-process start-up: `jax.distributed.initialize` from flags, our environment variables, or the
cluster JAX detects (SLURM, TPU pod slices). Call before anything touches a device."""

import os

import jax

ENV_COORDINATOR, ENV_COUNT, ENV_INDEX, ENV_LOCAL_DEVICES = (
    "CWM_COORDINATOR_ADDRESS", "CWM_NUM_PROCESSES", "CWM_PROCESS_ID", "CWM_CPU_DEVICES")


def _cluster_detected() -> bool:
    slurm = int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_JOB_ID" in os.environ
    tpu_pod = len(os.environ.get("TPU_WORKER_HOSTNAMES", "").split(",")) > 1
    return slurm or tpu_pod


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """Explicit arguments win, then CWM_* variables (the local launcher sets them), then cluster detection;
    with none of these, one process."""
    coordinator = coordinator or os.environ.get(ENV_COORDINATOR)
    cpu_devices = os.environ.get(ENV_LOCAL_DEVICES)
    if cpu_devices:
        jax.config.update("jax_num_cpu_devices", int(cpu_devices))
    if coordinator:
        num_processes = num_processes if num_processes is not None else int(os.environ[ENV_COUNT])
        process_id = process_id if process_id is not None else int(os.environ[ENV_INDEX])
        if jax.config.jax_platforms in (None, "", "cpu") and cpu_devices:
            jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes talk over TCP
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id)
    elif _cluster_detected():
        jax.distributed.initialize()
