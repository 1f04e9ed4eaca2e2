"""The training corpus a fresh clone can build with nothing from outside: traces of CRUXEval and of the
shipped functions and programs, the shipped agent episodes, the shipped code as text, and a SentencePiece
tokenizer trained on it. Built once into a folder and reused (a manifest records what was built)."""

import ast
import glob
import json
import os
from collections.abc import Callable

from cwm_common.repo_paths import CORPUS, CRUXEVAL
from cwm_data import trace_format
from cwm_data.generators.corpus_jobs import function_jobs, program_jobs
from cwm_data.sandboxed_tracer import TracerPool
from cwm_data.shards import ShardWriter
from cwm_data.tokenizer import train_sentencepiece
from cwm_data.trace_frames import TraceLimits

FORMAT_VERSION = 4  # 3: the release's ".." rule and unmarked call frames; 4: traced in sandboxes (hash seed 0)


def _printed(value_repr: str) -> str | None:
    """What print() shows for a value whose repr is given (str() differs from repr() only for strings)."""
    try:
        value = ast.literal_eval(value_repr)
    except (ValueError, SyntaxError):
        return None
    return str(value) if "\n" not in str(value) else None


def build_shipped_corpus(out_dir: str, tokenizer_vocab: int, log: Callable[[str], None] = print) -> dict:
    """Paths of the corpus in out_dir ({"trace": [...], "agent": [...], "text": [...], "tokenizer": ...})."""
    manifest_path = os.path.join(out_dir, "manifest.json")
    wanted = {"format": FORMAT_VERSION, "tokenizer_vocab": tokenizer_vocab}
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
        if manifest["built_with"] == wanted:
            return manifest["paths"]
    os.makedirs(out_dir, exist_ok=True)
    limits = TraceLimits(max_steps=20_000, timeout_s=5.0)
    # CRUXEval's code is nobody's we have read: everything is traced in sandboxes, a trace server per core.
    jobs, _ = function_jobs(sorted(glob.glob(os.path.join(CORPUS, "functions", "*.py"))), per_function=8)
    jobs += program_jobs(sorted(glob.glob(os.path.join(CORPUS, "programs", "*.py"))))
    with open(CRUXEVAL) as f:
        crux = [json.loads(line) for line in f]
    calls = [(j.source, j.entry, j.call_args, j.stdin) for j in jobs] + [
        (s["code"], "f", s["input"], None) for s in crux
    ]
    texts: list[str] = []
    predictions: list[str] = []
    with TracerPool(os.cpu_count() or 1) as tracers, ShardWriter(out_dir, "traces", records_per_shard=500) as shards:
        for (source, entry, call_args, _), result in zip(calls, tracers.trace_all(calls, limits), strict=True):
            if result.complete:
                shards.write(
                    json.dumps(
                        {
                            "source": result.source,
                            "status": result.status,
                            "frames": [f.to_json() for f in result.frames],
                        }
                    ).encode()
                )
                if len(texts) < 300:
                    texts.append(trace_format.to_text(trace_format.render(result.frames, True)))
                returned = result.frames[-1]
                if entry is not None and returned.event == "return" and returned.value is not None:
                    # Output prediction in plain Python: the call, then what printing it shows.
                    printed = _printed(returned.value)
                    if printed is not None:
                        predictions.append(f"{source.rstrip()}\n\nprint({entry}({call_args}))\n# prints: {printed}\n")
        trace_paths = shards.close()
    code = [open(p).read() for p in sorted(glob.glob(os.path.join(CORPUS, "**", "*.py"), recursive=True))]
    code += [s["code"] for s in crux] + predictions
    text_path = os.path.join(out_dir, "text.jsonl")
    with open(text_path, "w") as f:
        f.writelines(json.dumps({"text": t}) + "\n" for t in code)
    agent_path = os.path.join(CORPUS, "agent", "episodes.jsonl")
    with open(agent_path) as f:
        episodes = [json.loads(line) for line in f]
    texts += code + [m["content"] for e in episodes for m in e["messages"]]
    tokenizer_path = os.path.join(out_dir, "tokenizer.model")
    train_sentencepiece(texts, tokenizer_vocab, tokenizer_path)
    paths = {"trace": trace_paths, "agent": [agent_path], "text": [text_path], "tokenizer": tokenizer_path}
    with open(manifest_path, "w") as f:
        json.dump({"built_with": wanted, "paths": paths, "traces": shards.count}, f, indent=1)
    log(
        f"built the shipped corpus in {out_dir}: {shards.count} traces, {len(code)} code files and "
        f"output predictions, "
        f"{len(episodes)} agent episodes, tokenizer of {tokenizer_vocab} + 256 tokens"
    )
    return paths
