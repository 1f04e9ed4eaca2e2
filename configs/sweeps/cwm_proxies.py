"""CWM's hyper-parameter sweep, as the paper describes it, for a cluster: 8 compute scales from 2e18 to 2e20
FLOPs (each ~1.9x the last), one CWM-shaped model per scale at a fixed D/M = 40 (so M = sqrt(C / 40)), and a
quasi-random search over batch size and learning rate (16 Halton points per scale, enough to fit each
scale's optimum as a quadratic; 128 runs, 6.6e21 FLOPs in all). The shapes keep
CWM's ratios (FFN 3.5 d, head_dim 64, ~6 query heads per KV head, d / L near 96, the 3:1 local:global
interleave); at S = 8192 the attention term is much of M for the small ones. Emit one command per run and
submit them:

    cwm sweep --config configs/sweeps/cwm_proxies.py --workdir /shared/sweep --emit slurm \\
        --config.sweep.launcher_args="--nodes 1 --gpus-per-node 8"

Set train.data.sources (and train.data.tokenizer) to your tokenized corpus first (configs/train_defaults.py).
"""

import ml_collections

from configs.train_defaults import base


def _shape(d_model: int, n_layers: int, n_heads: int, n_kv_heads: int) -> dict:
    return dict(
        d_model=d_model,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        head_dim=64,
        ffn_dim=int(3.5 * d_model),
    )


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
    c.sweep = ml_collections.ConfigDict(
        dict(
            search="quasi_random",
            # name: the scale's compute in units of 1e18 FLOPs; fields over cwm-50m (non-embedding params)
            models=ml_collections.ConfigDict(
                {
                    "c02e18": _shape(512, 5, 8, 1),  # 16.7M
                    "c04e18": _shape(512, 7, 8, 1),  # 23.4M
                    "c08e18": _shape(640, 7, 10, 2),  # 37.0M
                    "c14e18": _shape(768, 7, 12, 2),  # 53.0M
                    "c29e18": _shape(896, 8, 14, 2),  # 82.1M
                    "c54e18": _shape(896, 11, 14, 2),  # 113M
                    "c98e18": _shape(1024, 12, 16, 2),  # 160M
                    "c200e18": _shape(1280, 12, 20, 2),  # 250M
                }
            ),
            tokens=(),
            data_to_model_ratio=40.0,
            batch_sizes=(),
            lrs=(),
            samples=16,
            lr_range=(1e-4, 3e-3),
            batch_range=(32, 512),
            warmup_fraction=0.02,
            optimum="quadratic",  # the minimum of a quadratic in log LR and log batch fitted to each scale's runs
            smoothing_fraction=0.05,
            launcher_args="",
        )
    )
    return c
