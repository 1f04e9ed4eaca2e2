"""Multi-process start-up: `jax.distributed.initialize` from flags, our environment variables, or the
cluster JAX detects (SLURM, TPU pod slices, when CWM_DISTRIBUTED=auto, as the launchers set). Call before
anything touches a device."""

import os

import jax

ENV_COORDINATOR, ENV_COUNT, ENV_INDEX, ENV_LOCAL_DEVICES, ENV_AUTO = (
    "CWM_COORDINATOR_ADDRESS",
    "CWM_NUM_PROCESSES",
    "CWM_PROCESS_ID",
    "CWM_CPU_DEVICES",
    "CWM_DISTRIBUTED",
)


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None) -> None:
    """Explicit arguments win, then CWM_* variables (the local launcher sets them), then JAX's own cluster
    detection if CWM_DISTRIBUTED=auto (the TPU and SLURM launchers set it); with none of these, one process."""
    coordinator = coordinator or os.environ.get(ENV_COORDINATOR)
    cpu_devices = os.environ.get(ENV_LOCAL_DEVICES)
    if cpu_devices:
        jax.config.update("jax_num_cpu_devices", int(cpu_devices))
    if coordinator:
        num_processes = num_processes if num_processes is not None else int(os.environ[ENV_COUNT])
        process_id = process_id if process_id is not None else int(os.environ[ENV_INDEX])
        if jax.config.values["jax_platforms"] in (None, "", "cpu") and cpu_devices:
            jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes talk over TCP
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    elif os.environ.get(ENV_AUTO) == "auto":
        jax.distributed.initialize()
