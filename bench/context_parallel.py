"""Context parallelism for long sequences: one attention layer's forward and backward with the sequence split
over a mesh axis, as `blockwise` (XLA gathers the keys and values) and as `ring` (they travel around the
ring), compiled ahead of time on simulated CPU devices. Prints per-device temporary memory, the collectives
in the compiled step, and the ratio ring / blockwise.

    python bench/context_parallel.py [--seq-len 131072] [--sequence 8] [--preset cwm-32b]
"""

import argparse
import os
import re


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="cwm-32b")
    parser.add_argument("--seq-len", type=int, default=131072)
    parser.add_argument("--sequence", type=int, default=8, help="devices the sequence is split over")
    parser.add_argument("--block", type=int, default=512)
    args = parser.parse_args()
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.sequence}"
    import jax
    import jax.numpy as jnp

    from cwm_jax.attention import ATTENTION_IMPLS
    from cwm_jax.presets import from_preset
    from cwm_jax.sharding import ShardingRules, make_mesh, on_mesh, spec_for

    cfg = from_preset(args.preset)
    mesh = make_mesh({"sequence": args.sequence, "data": 1, "fsdp": 1, "tensor": 1})
    rules = ShardingRules()

    def shape(heads):
        return (1, args.seq_len, heads, cfg.head_dim)

    with on_mesh(mesh, rules):

        def sharding(axes):
            return jax.sharding.NamedSharding(mesh, spec_for(axes, rules.activations))

        q = jax.ShapeDtypeStruct(
            shape(cfg.n_heads), jnp.bfloat16, sharding=sharding(("batch", "length", "heads", None))
        )
        kv = jax.ShapeDtypeStruct(
            shape(cfg.n_kv_heads), jnp.bfloat16, sharding=sharding(("batch", "length", "kv_heads", None))
        )
        tokens = jax.ShapeDtypeStruct((1, args.seq_len), jnp.int32, sharding=sharding(("batch", "length")))
        results = {}
        for impl in ("blockwise", "ring"):

            def loss(q, k, v, positions, segments, impl=impl):
                out = ATTENTION_IMPLS[impl](
                    q,
                    k,
                    v,
                    q_positions=positions,
                    kv_positions=positions,
                    q_segments=segments,
                    kv_segments=segments,
                    window=None,
                    block_size=args.block,
                )
                return out.astype(jnp.float32).sum()

            compiled = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(q, kv, kv, tokens, tokens).compile()
            hlo, analysis = compiled.as_text(), compiled.memory_analysis()
            if hlo is None or analysis is None:
                raise SystemExit(f"the {jax.default_backend()} compiler reports no HLO text or memory analysis")
            ops = {op: len(re.findall(rf"= \S+ {op}(-start)?\(", hlo)) for op in ("all-gather", "collective-permute")}
            results[impl] = analysis.temp_size_in_bytes / 2**30
            print(
                f"{impl:9s}: {results[impl]:7.2f} GiB temporaries per device; "
                + ", ".join(f"{n} {op}" for op, n in ops.items())
            )
    print(
        f"{args.preset} attention layer (global), 1 x {args.seq_len} over sequence={args.sequence}: "
        f"ring / blockwise temporaries {results['ring'] / results['blockwise']:.2f}x"
    )


if __name__ == "__main__":
    main()
