"""`cwm plan`: per-device memory of a preset's train step (or, with --rl, its RL learner step and sampler)
on a target mesh, compiled on this CPU."""


def add_parser(subparsers):
    p = subparsers.add_parser("plan", help="AOT-compile a train step for a mesh and report per-device memory")
    p.add_argument("--preset", default="cwm-32b")
    p.add_argument("--mesh", default="fsdp=-1", help="axis=size,... over data, fsdp, tensor, sequence")
    p.add_argument("--devices", type=int, default=256, help="simulated devices (the target's device count)")
    p.add_argument("--batch", type=int, default=256, help="global batch in sequences")
    p.add_argument("--seq-len", type=int, default=8192)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--dtype", default="bfloat16", help="compute dtype (parameters stay fp32)")
    p.add_argument("--remat", default="full", help="none, full or save_dots")
    p.add_argument("--attention", default="blockwise", help="attention_impl: blockwise, or ring over a sequence axis")
    p.add_argument("--device-memory-gib", type=float, default=None, help="say whether it fits, e.g. 95 (v5p)")
    rl = p.add_argument_group("--rl: the GRPO learner step and the sampler (rows = prompts x group)")
    rl.add_argument("--rl", action="store_true", help="plan an RL run instead of pretraining")
    rl.add_argument("--prompts", type=int, default=64, help="rl.prompts_per_step")
    rl.add_argument("--group", type=int, default=8, help="rl.group_size")
    rl.add_argument("--episode-tokens", type=int, default=32768, help="tokens per row (prompt, turns, tool output)")
    rl.add_argument("--sampler-mesh", default="tensor=-1", help="rl.sampler_mesh, axis=size,...")
    rl.add_argument("--sampler-dtype", default="bfloat16", help="rl.sampler_dtype")
    rl.add_argument("--logprob-chunk", type=int, default=512, help="rl.logprob_chunk")
    p.set_defaults(run=run)


def run(args):
    import jax

    from cwm_cli.user_input import mesh_flag, require_positive

    require_positive(args, "--devices", "--batch", "--seq-len", "--grad-accum")
    require_positive(args, "--prompts", "--group", "--episode-tokens", "--logprob-chunk")
    require_positive(args, "--device-memory-gib", unit="number of GiB")
    # Simulated devices must be configured before the CPU backend starts.
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", args.devices)
    from cwm_jax.aot_plan import plan_memory
    from cwm_jax.presets import from_preset

    length = args.episode_tokens if args.rl else args.seq_len
    cfg = from_preset(
        args.preset,
        dtype=args.dtype,
        remat=args.remat,
        attention_impl=args.attention,
        attention_block_size=min(512, length),
    )
    devices = jax.devices()[: args.devices]
    if args.rl:
        from cwm_rl.rl_plan import plan_rl_memory

        rows = args.prompts * args.group
        plan = plan_rl_memory(
            cfg,
            mesh_flag(args.mesh, "--mesh"),
            mesh_flag(args.sampler_mesh, "--sampler-mesh"),
            rows,
            length,
            args.grad_accum,
            args.logprob_chunk,
            args.sampler_dtype,
            devices,
        )
        print(
            f"{args.preset} RL: {args.prompts} prompts x group {args.group} = {rows} rows x {length} tokens, "
            f"{args.dtype} compute, remat {args.remat}, grad_accum {args.grad_accum}, log-prob chunk "
            f"{args.logprob_chunk}, sampler in {args.sampler_dtype}"
        )
        print(plan.table(args.device_memory_gib))
        return
    plan_train = plan_memory(cfg, mesh_flag(args.mesh, "--mesh"), args.batch, args.seq_len, args.grad_accum, devices)
    print(
        f"{args.preset}: batch {args.batch} x {args.seq_len}, {args.dtype} compute, remat {args.remat}, "
        f"grad_accum {args.grad_accum}, {args.attention} attention"
    )
    print(plan_train.table(args.device_memory_gib))
