"""CWM's hyper-parameter sweep, as the paper describes it, for a cluster: CWM-shaped proxies at a fixed
D/M = 40, quasi-random batch size and learning rate (8 Halton points per size), compute 1.8e19, 6.5e19 and
3.8e20 FLOPs (the paper: 8 compute scales over 2e18-2e20). Emit one command per run and submit them:

    cwm sweep --config configs/sweeps/cwm_proxies.py --workdir /shared/sweep --emit slurm \\
        --config.sweep.launcher_args="--nodes 1 --gpus-per-node 8"

Set train.data.sources (and train.data.tokenizer) to your tokenized corpus first (configs/train_defaults.py).
"""

import ml_collections

from configs.train_defaults import base


def get_config():
    c = ml_collections.ConfigDict()
    c.train = base("cwm-50m")
    c.train.data.kind = "pipeline"
    c.train.data.seq_len = 8192
    c.train.model.dtype = "bfloat16"
    c.train.model.remat = "full"
    c.train.mesh.fsdp = -1
    c.train.mesh.data = 1
    c.train.checkpoint_every = 500
    c.train.log_every = 50
    c.sweep = ml_collections.ConfigDict(dict(
        search="quasi_random",
        models=ml_collections.ConfigDict({name: dict(preset=name) for name in ("cwm-50m", "cwm-150m", "cwm-400m")}),
        tokens=(), data_to_model_ratio=40.0,
        batch_sizes=(), lrs=(),
        samples=8, lr_range=(1e-4, 3e-3), batch_range=(32, 512),
        warmup_fraction=0.02,
        smoothing_fraction=0.05,
        launcher_args="",
    ))
    return c
