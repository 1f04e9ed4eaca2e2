"""Input-pipeline and trace-generation throughput, each against its limit measured in the same run.

- pipeline tokens/s per core (0 and 2 worker processes) against raw tokenization of the same documents
  (encoding is the work the pipeline cannot avoid), and packing efficiency (non-pad fraction);
- trace generation in sandboxes (bwrap and Docker trace servers, a forked child per trace) traces/s per core
  against in-process tracing of the same functions, a server's start, and the per-trace overhead p50/p99.

    python bench/data_pipeline.py [traces]    (traces: only the trace-generation part)
"""

import glob
import json
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

from cwm_data.agent_format import render_episode
from cwm_data.generators.corpus_jobs import function_jobs
from cwm_data.pipeline.documents import trace_pieces
from cwm_data.pipeline.input_pipeline import PipelineConfig, Source, build_dataset
from cwm_data.sandboxed_tracer import TracerPool, TraceServer
from cwm_data.shards import ShardWriter
from cwm_data.tokenizer import train_sentencepiece
from cwm_data.trace_frames import TraceLimits
from cwm_data.tracer import trace
from cwm_envs.sandbox import BACKENDS

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORES = os.cpu_count() or 1


def build_corpus(d: str):
    crux = [json.loads(line) for line in (ROOT / "data/benchmarks/cruxeval/cruxeval.jsonl").read_text().splitlines()]
    traces = []
    calls = [(sample["code"], "f", sample["input"], None) for sample in crux]
    with TracerPool(CORES) as tracers, ShardWriter(d, "traces", records_per_shard=200) as shards:
        for r in tracers.trace_all(calls, TraceLimits()):
            record = {"source": r.source, "status": r.status, "frames": [f.to_json() for f in r.frames]}
            traces.append(record)
            shards.write(json.dumps(record).encode())
    episodes = [json.loads(line) for line in (ROOT / "data/corpus/agent/episodes.jsonl").read_text().splitlines()]
    with open(f"{d}/agent.jsonl", "w") as f:
        for k in range(300):
            f.write(json.dumps({**episodes[k % len(episodes)], "id": f"ep{k}"}) + "\n")
    code = [open(p).read() for p in sorted(glob.glob(str(ROOT / "data/corpus/**/*.py"), recursive=True))]
    code += [s["code"] for s in crux]
    with open(f"{d}/text.jsonl", "w") as f:
        for text in code:
            f.write(json.dumps({"text": text}) + "\n")
    tokenizer = train_sentencepiece(code + [json.dumps(t) for t in traces[:200]], 4000, f"{d}/sp.model")
    return shards.paths, traces, episodes, code, tokenizer


def main():
    with tempfile.TemporaryDirectory() as d:
        trace_paths, traces, episodes, code, tok = build_corpus(d)
        # The limit: encoding the same kinds of documents, in this process, with nothing else.
        pieces = [trace_pieces(t) for t in traces]
        start = time.perf_counter()
        n_raw = sum(len(tok.encode_pieces(p)) for p in pieces) + sum(len(tok.encode(t)) for t in code)
        n_raw += sum(len(render_episode({**episodes[k % 3], "id": str(k)}, tok)[0]) for k in range(300))
        raw = n_raw / (time.perf_counter() - start)
        print(f"raw tokenization: {raw:,.0f} tokens/s (1 core)")
        sources = (
            Source("trace", "trace", tuple(trace_paths), 0.3),
            Source("agent", "agent", (f"{d}/agent.jsonl",), 0.2),
            Source("text", "text", (f"{d}/text.jsonl",), 0.5),
        )
        for workers in (0, 2):
            cfg = PipelineConfig(
                sources=sources, tokenizer=f"{d}/sp.model", seq_len=1024, batch_size=8, num_workers=workers
            )
            it = iter(build_dataset(cfg))
            next(it)  # start-up (worker processes) is not throughput
            start, real, total = time.perf_counter(), 0, 0
            for _ in range(60):
                batch = next(it)
                real += int((batch["segment_ids"] > 0).sum())
                total += batch["segment_ids"].size
            rate = total / (time.perf_counter() - start)
            used = max(1, min(CORES, workers or 1))
            print(
                f"pipeline, {workers} workers: {rate:,.0f} tokens/s = {rate / used:,.0f} per core; "
                f"{rate / used / raw:.2f}x raw tokenization per core; packing {real / total:.1%} non-pad"
            )
        epoch = PipelineConfig(sources=sources[:1], tokenizer=f"{d}/sp.model", seq_len=1024, batch_size=1, num_epochs=1)
        rows = list(build_dataset(epoch))
        real = sum(int((r["segment_ids"] > 0).sum()) for r in rows)
        print(f"packing over one finite epoch (last row padded): {real / (len(rows) * 1024):.2%} non-pad")

        trace_generation()


def _traces_per_second(calls, limits, tracers: TracerPool | None) -> tuple[float, list[str]]:
    start = time.perf_counter()
    if tracers is None:
        results = [trace(source, entry, args, stdin, limits) for source, entry, args, stdin in calls]
    else:
        results = list(tracers.trace_all(calls, limits))
    return len(calls) / (time.perf_counter() - start), [r.status for r in results]


def trace_generation(rounds: int = 3):
    """Sandboxed tracing (trace servers, a trace per forked child) against in-process tracing of the same
    functions, per core, each sandboxed run right after an in-process one (the machine's speed drifts; the
    median ratio of the rounds is reported); and what a server costs: its start, and each trace's time
    beyond the trace itself."""
    jobs, _ = function_jobs(sorted(glob.glob(str(ROOT / "data/corpus/functions/*.py"))), 8)
    calls = [(job.source, job.entry, job.call_args, None) for job in jobs] * 3  # 600: servers' start amortized
    limits = TraceLimits(max_steps=5000, timeout_s=2)
    print(f"trace generation: {len(calls)} traces of the shipped functions, {rounds} rounds")
    for backend in BACKENDS:
        # Two servers per core: while one server's answer is read, another one's child runs.
        with TracerPool(2 * CORES, backend) as tracers:
            list(tracers.trace_all(calls[: 2 * CORES], limits))  # servers started (their start is measured below)
            ratios, rates = [], []
            for _ in range(rounds):
                in_process, statuses = _traces_per_second(calls, limits, None)
                sandboxed, sandboxed_statuses = _traces_per_second(calls, limits, tracers)
                assert sandboxed_statuses == statuses, "the sandbox traced differently"
                ratios.append(sandboxed / CORES / in_process)
                rates.append((in_process, sandboxed / CORES))
        starts, overheads = [], []
        for _ in range(5):
            server = TraceServer(backend)
            starts.append(server.start_seconds)
            server.close()
        server = TraceServer(backend)
        for call in calls[: len(jobs)]:
            begin = time.perf_counter()
            result = server.trace(*call[:3], limits=limits)
            overheads.append(time.perf_counter() - begin - result.seconds)
        server.close()
        p50, p99 = (1000 * float(np.percentile(overheads, q)) for q in (50, 99))
        per_round = ", ".join(f"{s:.0f} vs {i:.0f}" for i, s in rates)
        print(
            f"  {backend}: sandboxed per core vs in-process traces/s by round: {per_round}; median "
            f"{float(np.median(ratios)):.0%} of in-process; server start {1000 * float(np.median(starts)):.0f} ms; "
            f"per-trace overhead p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        )


if __name__ == "__main__":
    trace_generation() if sys.argv[1:] == ["traces"] else main()
