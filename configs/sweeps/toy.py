"""A scaling-law sweep of three tiny CWM-shaped models on the shipped corpus: CPU, a few minutes.

cwm sweep --config configs/sweeps/toy.py --workdir runs/toy_sweep
"""

import ml_collections

from configs.train_defaults import base


def get_config():
    c = ml_collections.ConfigDict()
    c.train = base("cwm-tiny")  # every run: this config with the sweep's model, batch, lr and steps
    c.train.data.kind = "shipped"
    c.train.data.seq_len = 64
    c.train.data.tokenizer_vocab = c.train.model.vocab_size - 256
    c.train.checkpoint_every = 1000  # runs this short restart rather than resume
    c.train.log_every = 1000
    c.sweep = ml_collections.ConfigDict(
        dict(
            search="grid",  # grid: every batch x lr; quasi_random: `samples` Halton points in lr_range x batch_range
            # name -> fields over train.model (or "preset": a cwm_jax.presets name, then fields over it)
            models=ml_collections.ConfigDict(
                {
                    "d48": dict(d_model=48, n_heads=3, head_dim=16, ffn_dim=168),
                    "d96": dict(d_model=96, n_heads=3, head_dim=32, ffn_dim=336),
                    "d192": dict(d_model=192, n_heads=6, head_dim=32, ffn_dim=672),
                }
            ),
            tokens=(32_768, 131_072),  # trained tokens per run; or set data_to_model_ratio (D = ratio x M, CWM: 40)
            data_to_model_ratio=0.0,
            batch_sizes=(16,),
            lrs=(3e-3, 1e-2),
            samples=0,
            lr_range=(1e-4, 1e-2),
            batch_range=(8, 64),
            warmup_fraction=0.1,
            optimum="best",  # LR / BS laws through each level's best run, or "quadratic": its fitted minimum
            smoothing_fraction=0.2,  # smoothed loss: the mean over the last 20% of steps
            launcher_args="",  # for --emit slurm / tpu_pod, e.g. "--nodes 1 --gpus-per-node 8"
        )
    )
    return c
