"""`cwm generate --model DIR --prompt TEXT [--chat]`: sample a completion and print it."""

import sys


def add_parser(subparsers):
    from cwm_cli.model_args import add_model_args

    p = subparsers.add_parser("generate", help="generate text from a model")
    add_model_args(p)
    p.add_argument("--prompt", required=True)
    p.add_argument("--chat", action="store_true", help="wrap the prompt as a user turn of CWM's chat format")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=run)


def run(args):
    from cwm_cli.model_args import load_model_and_tokenizer
    from cwm_cli.user_input import require_non_negative, require_positive
    from cwm_data import special_tokens as st
    from cwm_data.chat_format import STOP_TOKENS, generation_prompt
    from cwm_data.special_tokens import special
    from cwm_jax.engine.generate import generate

    require_positive(args, "--max-new-tokens")
    require_non_negative(args, "--temperature")
    model, tokenizer = load_model_and_tokenizer(args)
    stops: tuple[str, ...]
    if args.chat:
        pieces = generation_prompt([("user", args.prompt)], reasoning=False)
        stops = STOP_TOKENS
    else:
        pieces = [special(st.BEGIN_OF_TEXT), args.prompt]
        stops = (st.END_OF_TEXT,)
    [out] = generate(
        model,
        [tokenizer.encode_pieces(pieces)],
        args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        stop_tokens=tuple(tokenizer.special_id(s) for s in stops),
        seed=args.seed,
    )
    sys.stdout.write(tokenizer.decode(out) + "\n")
