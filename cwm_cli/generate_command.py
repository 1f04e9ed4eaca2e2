"""`cwm generate --checkpoint DIR|--hf DIR --prompt TEXT`: sample a completion and print it."""

import sys


def add_parser(subparsers):
    p = subparsers.add_parser("generate", help="generate text from a model")
    p.add_argument("--checkpoint", help="cwm model directory or training workdir")
    p.add_argument("--hf", help="Hugging Face CwmForCausalLM directory")
    p.add_argument("--tokenizer", help="tokenizer file (default: the model directory's tokenizer.model)")
    p.add_argument("--prompt", required=True)
    p.add_argument("--chat", action="store_true", help="wrap the prompt as a user turn of CWM's chat format")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def run(args):
    from cwm_data import special_tokens as st
    from cwm_data.special_tokens import special
    from cwm_jax.inference_io import check_vocab, find_tokenizer, load_inference_model
    from cwm_jax.sampling import generate

    model = load_inference_model(args.checkpoint, args.hf)
    tokenizer = find_tokenizer(args.tokenizer, args.checkpoint or args.hf)
    check_vocab(model.cfg, tokenizer)
    if args.chat:
        pieces = [special(st.BEGIN_OF_TEXT), special(st.START_HEADER), "user", special(st.END_HEADER), "\n\n",
                  args.prompt, special(st.EOT), special(st.START_HEADER), "assistant", special(st.END_HEADER), "\n\n"]
        stops = (tokenizer.special_id(st.EOT), tokenizer.special_id(st.END_OF_TEXT))
    else:
        pieces = [special(st.BEGIN_OF_TEXT), args.prompt]
        stops = (tokenizer.special_id(st.END_OF_TEXT),)
    [out] = generate(model, [tokenizer.encode_pieces(pieces)], args.max_new_tokens, temperature=args.temperature,
                     top_p=args.top_p, stop_tokens=stops, seed=args.seed)
    sys.stdout.write(tokenizer.decode(out) + "\n")
