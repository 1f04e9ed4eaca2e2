"""The model a command runs (`--model DIR`, any saved format, optionally sharded with `--mesh`) and its
tokenizer: one flag set, one loader."""


def add_model_args(parser):
    parser.add_argument(
        "--model",
        "--checkpoint",
        "--hf",
        dest="model",
        required=True,
        metavar="DIR",
        help="a Hugging Face CwmForCausalLM directory, a cwm model directory or a training workdir",
    )
    parser.add_argument("--tokenizer", help="tokenizer file (default: tokenizer.model in the model directory)")
    parser.add_argument(
        "--mesh",
        metavar="AXIS=SIZE,...",
        help="shard the model's parameters over the devices, e.g. tensor=4,fsdp=2 (axes data, fsdp, tensor, "
        "sequence; -1: the rest); default: one device",
    )


def load_model_and_tokenizer(args):
    from cwm_jax.inference_io import check_vocab, find_tokenizer, load_model

    model = load_model(args.model, mesh=_mesh(args.mesh))
    tokenizer = find_tokenizer(args.tokenizer, args.model)
    check_vocab(model.cfg, tokenizer)
    return model, tokenizer


def _mesh(text: str | None):
    """The mesh `--mesh` names, or None when it is not given."""
    if text is None:
        return None
    from cwm_cli.user_input import mesh_flag
    from cwm_common.errors import CwmError
    from cwm_jax.sharding import make_mesh

    spec = mesh_flag(text, "--mesh")
    try:
        return make_mesh(spec)
    except CwmError as e:  # the sizes do not fit the device count: say which flag asked for them
        raise CwmError(f"--mesh {text}: {e}") from None
