"""The model a command runs (`--model DIR`, any saved format) and its tokenizer: one flag set, one loader."""


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


def load_model_and_tokenizer(args):
    from cwm_jax.inference_io import check_vocab, find_tokenizer, load_model

    model = load_model(args.model)
    tokenizer = find_tokenizer(args.tokenizer, args.model)
    check_vocab(model.cfg, tokenizer)
    return model, tokenizer
