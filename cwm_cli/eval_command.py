"""`cwm eval trace|cruxeval|math|humaneval --checkpoint DIR|--hf DIR`: JSON results and a short table."""

import json
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MATH_SETS = ("aime24", "amc23", "gsm8k_test")


def add_parser(subparsers):
    p = subparsers.add_parser("eval", help="evaluate a model (trace prediction, CRUXEval, math, HumanEval)")
    p.add_argument("task", choices=("trace", "cruxeval", "math", "humaneval"))
    p.add_argument("--checkpoint", help="cwm model directory or training workdir")
    p.add_argument("--hf", help="Hugging Face CwmForCausalLM directory")
    p.add_argument("--tokenizer")
    p.add_argument("--limit", type=int, default=None, help="first N items only")
    p.add_argument("--samples", type=int, default=1, help="samples per item (pass@k)")
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--max-new-tokens", type=int, default=1024)
    p.add_argument("--math-set", choices=MATH_SETS, default="gsm8k_test")
    p.add_argument("--backend", default="bwrap", choices=("bwrap", "docker"), help="sandbox for code execution")
    p.add_argument("--out", help="write the JSON result here")
    p.set_defaults(run=run)


def _jsonl(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def run(args):
    from cwm_jax.completion import ModelCompleter
    from cwm_jax.inference_io import check_vocab, find_tokenizer, load_inference_model

    model = load_inference_model(args.checkpoint, args.hf)
    tokenizer = find_tokenizer(args.tokenizer, args.checkpoint or args.hf)
    check_vocab(model.cfg, tokenizer)
    result = evaluate(args.task, ModelCompleter(model), tokenizer, args)
    print(table(result))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return 0


def evaluate(task: str, completer, tokenizer, args) -> dict:
    limit = slice(0, args.limit)
    if task == "trace":
        import glob

        from cwm_data.generators.corpus_jobs import function_jobs
        from cwm_jax.evals.trace_prediction import evaluate_trace_prediction

        jobs, _ = function_jobs(sorted(glob.glob(os.path.join(REPO, "data/corpus/functions/*.py"))), per_function=1)
        cases = [(j.source, j.entry, j.call_args) for j in jobs][limit]
        return evaluate_trace_prediction(completer, tokenizer, cases, args.max_new_tokens)
    from cwm_envs.pool import SandboxPool
    from cwm_envs.sandbox import make_sandbox

    if task == "math":
        from cwm_jax.evals.math_eval import evaluate_math

        rows = _jsonl(os.path.join(REPO, "data/benchmarks/math", f"{args.math_set}.jsonl"))[limit]
        problems = [{"id": r.get("id", r.get("idx", i)), "problem": r.get("problem", r.get("question")),
                     "answer": str(r["answer"]).split("####")[-1].strip().replace(",", "")} for i, r in enumerate(rows)]
        return evaluate_math(completer, tokenizer, problems, args.samples, args.temperature, args.max_new_tokens)
    if task == "cruxeval":
        from cwm_jax.evals.cruxeval_eval import evaluate_cruxeval

        samples = _jsonl(os.path.join(REPO, "data/benchmarks/cruxeval/cruxeval.jsonl"))[limit]
        sandbox = make_sandbox(args.backend)
        try:
            return evaluate_cruxeval(completer, tokenizer, samples, sandbox, args.max_new_tokens)
        finally:
            sandbox.close()
    from cwm_envs.tasks.humaneval import humaneval_tasks
    from cwm_jax.evals.humaneval_eval import evaluate_humaneval

    with SandboxPool(lambda: make_sandbox(args.backend), 4) as pool:
        return evaluate_humaneval(completer, tokenizer, humaneval_tasks()[limit], pool, args.samples,
                                  args.temperature, args.max_new_tokens)


def table(result: dict) -> str:
    rows = [f"{result['task']} ({result['n']} items" + (f", {result['samples']} samples" if "samples" in result else "")
            + ")"]
    rows += [f"  {metric:<14} {value:7.1%}" for metric, value in result["summary"].items()]
    return "\n".join(rows)
