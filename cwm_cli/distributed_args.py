"""The flags a multi-process command takes (`cwm train`, `cwm rl`); launchers may set CWM_* variables
instead (cwm_jax/distributed.py)."""


def add_distributed_args(p):
    p.add_argument("--coordinator", help="host:port of process 0, for multi-process runs")
    p.add_argument("--num-processes", type=int)
    p.add_argument("--process-id", type=int)


def initialize_distributed(args):
    """Joins the run's processes; call before anything touches a device."""
    from cwm_jax import distributed

    distributed.initialize(args.coordinator, args.num_processes, args.process_id)
