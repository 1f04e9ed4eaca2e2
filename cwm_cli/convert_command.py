"""`cwm convert`: Hugging Face CwmForCausalLM directories <-> cwm model directories (Orbax); a training
or SFT run's workdir (its latest checkpoint's params) exports to Hugging Face too."""


def add_parser(subparsers):
    p = subparsers.add_parser("convert", help="convert weights between Hugging Face and cwm formats")
    p.add_argument("direction", choices=("hf-to-cwm", "cwm-to-hf"))
    p.add_argument(
        "source", help="directory to read (for cwm-to-hf: any saved model: a cwm model dir or a training workdir)"
    )
    p.add_argument("dest", help="directory to write")
    p.add_argument("--dtype", default=None, help="parameter dtype of the output (default: the source's)")
    p.set_defaults(run=run)


def run(args):
    from cwm_common.workdir import check_output_dir
    from cwm_jax.hf.convert import from_hf, to_hf
    from cwm_jax.inference_io import load_model
    from cwm_jax.model_checkpoint import save_model

    check_output_dir(args.dest)
    if args.direction == "hf-to-cwm":
        model = from_hf(args.source, dtype=args.dtype or "float32")
        save_model(model, args.dest)
    else:
        model = load_model(args.source)
        to_hf(model, args.dest, dtype=args.dtype)
    print(f"wrote {args.dest} ({model.cfg.param_count():,} parameters)")
