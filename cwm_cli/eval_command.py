"""`cwm eval trace|cruxeval|math|humaneval|stdio --model DIR`: JSON results and a short table.

Each benchmark's data, prompt and grader live in its cwm_tasks family; this command samples and reports."""

import json

GRADED = ("math", "humaneval", "stdio")


def add_parser(subparsers):
    from cwm_cli.model_args import add_model_args
    from cwm_envs.sandbox import BACKENDS
    from cwm_tasks.math_problems import EXTRACTIONS, MATH_SETS
    from cwm_tasks.stdio_programs import LANGUAGES

    p = subparsers.add_parser(
        "eval", help="evaluate a model (trace prediction, CRUXEval, math, HumanEval, stdin/stdout programs)"
    )
    p.add_argument("task", choices=("trace", "cruxeval", *GRADED))
    add_model_args(p)
    p.add_argument("--limit", type=int, default=None, help="first N items only")
    p.add_argument("--samples", type=int, default=1, help="samples per item (pass@k)")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--max-new-tokens", type=int, default=1024)
    p.add_argument("--math-set", choices=MATH_SETS, default="gsm8k_test")
    p.add_argument(
        "--math-extraction",
        choices=EXTRACTIONS,
        default="release",
        help="how a math answer is read: the release's rule (one </think>, one $\\boxed{...}$), or lenient "
        "(the last \\boxed{} anywhere; not comparable with CWM's numbers)",
    )
    p.add_argument(
        "--language",
        choices=LANGUAGES,
        action="append",
        help="stdio: the solution language (repeat for several; default: all)",
    )
    p.add_argument("--backend", default="bwrap", choices=BACKENDS, help="sandbox for code execution")
    p.add_argument("--out", help="write the JSON result here")
    p.set_defaults(run=run)


def run(args):
    from cwm_cli.model_args import load_model_and_tokenizer
    from cwm_cli.user_input import require_non_negative, require_positive
    from cwm_jax.completion import ModelCompleter

    require_positive(args, "--limit", "--samples", "--max-new-tokens")
    require_non_negative(args, "--temperature")
    model, tokenizer = load_model_and_tokenizer(args)
    result = evaluate(args.task, ModelCompleter(model), tokenizer, args)
    print(table(result))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return 0


def evaluate(task: str, completer, tokenizer, args) -> dict:
    from cwm_envs.pool import SandboxPool
    from cwm_envs.sandbox_factory import make_sandbox

    limit = slice(0, args.limit)
    if task == "trace":
        from cwm_jax.evals.trace_prediction_eval import evaluate_trace_prediction
        from cwm_tasks.trace_prediction import corpus_cases

        return evaluate_trace_prediction(completer, tokenizer, corpus_cases()[limit], args.max_new_tokens)
    if task == "cruxeval":
        from cwm_jax.evals.cruxeval_eval import evaluate_cruxeval
        from cwm_tasks.cruxeval import load_cruxeval

        return evaluate_cruxeval(completer, tokenizer, load_cruxeval()[limit], args.max_new_tokens)
    from cwm_jax.evals.pass_at_k import evaluate_pass_at_k

    family = _family(task, args)
    prompts = family.prompts()[limit]
    if not family.needs_sandbox:
        return evaluate_pass_at_k(
            completer, tokenizer, family, prompts, None, args.samples, args.temperature, args.max_new_tokens
        )
    with SandboxPool(lambda: make_sandbox(args.backend), 4) as pool:
        return evaluate_pass_at_k(
            completer, tokenizer, family, prompts, pool, args.samples, args.temperature, args.max_new_tokens
        )


def _family(task: str, args):
    if task == "math":
        from cwm_tasks.math_problems import MathTask

        return MathTask(args.math_set, extraction=args.math_extraction)
    if task == "stdio":
        from cwm_tasks.stdio_programs import LANGUAGES, StdioTask

        return StdioTask(languages=tuple(args.language or LANGUAGES))
    from cwm_tasks.humaneval import HumanEvalTask

    return HumanEvalTask()


def table(result: dict) -> str:
    rows = [
        f"{result['task']} ({result['n']} items"
        + (f", {result['samples']} samples" if "samples" in result else "")
        + ")"
    ]
    rows += [f"  {metric:<14} {value:7.1%}" for metric, value in result["summary"].items()]
    return "\n".join(rows)
