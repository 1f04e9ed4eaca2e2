"""The Grain pipeline: exact resume, process sharding, mixture proportions, malformed records, workers."""

import collections
import json
import pathlib
import re

import numpy as np
import pytest

from cwm_common.errors import CwmError
from cwm_data import special_tokens as st
from cwm_data.pipeline.elastic_batches import ElasticBatches, merged_state
from cwm_data.pipeline.input_pipeline import PipelineConfig, Source, build_dataset, malformed_counts
from cwm_data.shards import ShardWriter
from cwm_data.tokenizer import train_sentencepiece
from cwm_data.tracer import trace

ROOT = pathlib.Path(__file__).resolve().parents[1]
CRUXEVAL = [json.loads(line) for line in (ROOT / "data/benchmarks/cruxeval/cruxeval.jsonl").read_text().splitlines()]
EPISODE = {
    "messages": [
        {"role": "user", "content": "List files."},
        {"role": "assistant", "content": "<tool: bash>\nls\n</tool>"},
        {"role": "tool", "name": "bash", "content": "a.py b.py"},
        {"role": "assistant", "content": "Two files."},
    ]
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    with ShardWriter(str(d), "traces", records_per_shard=25) as shards:
        for sample in CRUXEVAL[:60]:
            result = trace(sample["code"], "f", sample["input"])
            shards.write(
                json.dumps(
                    {"source": result.source, "status": result.status, "frames": [f.to_json() for f in result.frames]}
                ).encode()
            )
    (d / "agent.jsonl").write_text("".join(json.dumps({**EPISODE, "id": f"e{i}"}) + "\n" for i in range(40)))
    lines = [json.dumps({"text": f"doc {i} says " + "hello " * (i % 9)}) for i in range(101)]
    (d / "text.jsonl").write_text("\n".join(lines[:50] + ['{"text": 5}'] + lines[50:]) + "\n")
    tokenizer = train_sentencepiece([s["code"] for s in CRUXEVAL] + lines, 600, str(d / "sp.model"))
    return d, shards.paths, tokenizer


def _config(corpus, sources, **kw):
    d, trace_paths, _ = corpus
    paths = {"trace": tuple(trace_paths), "agent": (str(d / "agent.jsonl"),), "text": (str(d / "text.jsonl"),)}
    return PipelineConfig(
        sources=tuple(Source(k, k, paths[k], w) for k, w in sources),
        tokenizer=str(d / "sp.model"),
        **{"seq_len": 128, "batch_size": 2, **kw},
    )


MIXTURE = [("trace", 0.5), ("agent", 0.3), ("text", 0.2)]


def _take(iterator, n):
    return [next(iterator) for _ in range(n)]


def _same(a, b):
    return len(a) == len(b) and all(all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("workers", [0, 2])
def test_restored_iterator_continues_exactly(corpus, workers):
    cfg = _config(corpus, MIXTURE, num_workers=workers)
    reference = iter(build_dataset(cfg))
    _take(reference, 6)
    state = json.loads(json.dumps(reference.get_state()))  # a checkpoint stores it as JSON
    expected = _take(reference, 6)
    restored = iter(build_dataset(cfg))
    restored.set_state(state)
    assert _same(_take(restored, 6), expected)
    batch = expected[0]
    assert {k: v.shape for k, v in batch.items()} == {
        k: (2, 128) for k in ("tokens", "segment_ids", "positions", "loss_mask")
    }


def _documents(batches, tokenizer) -> list[tuple[str, int]]:
    """The document stream back from packed rows (text after BOS, token count): join real tokens, cut at BOS."""
    ids = np.concatenate(
        [row[seg > 0] for b in batches for row, seg in zip(b["tokens"], b["segment_ids"], strict=True)]
    )
    bos = tokenizer.special_id(st.BEGIN_OF_TEXT)
    cuts = np.flatnonzero(ids == bos)
    return [(tokenizer.decode(part[1:]), len(part)) for part in np.split(ids, cuts)[1:]]


def _doc_number(text: str) -> int:
    match = re.match(r"doc (\d+) ", text)
    assert match is not None, text
    return int(match.group(1))


def test_two_processes_see_every_record_once_per_epoch(corpus):
    tokenizer = corpus[2]
    seen: collections.Counter[int] = collections.Counter()
    for index in (0, 1):
        cfg = _config(corpus, [("text", 1.0)], num_epochs=1, batch_size=1, process_index=index, process_count=2)
        docs = _documents(list(build_dataset(cfg)), tokenizer)
        seen.update(_doc_number(text) for text, _ in docs)
    assert sorted(seen) == list(range(101)) and set(seen.values()) == {1}


def test_mixture_weights_are_token_fractions(corpus):
    cfg = _config(corpus, MIXTURE, seq_len=256)
    batches = _take(iter(build_dataset(cfg)), 150)
    tokens: collections.Counter[str] = collections.Counter()
    for doc, length in _documents(batches, corpus[2])[1:-1]:  # the first and last may be cut by the window
        kind = (
            "trace" if doc.startswith(st.TRACE_CONTEXT_START) else "agent" if "<|start_header_id|>" in doc else "text"
        )
        tokens[kind] += length
    total = sum(tokens.values())
    for kind, weight in MIXTURE:
        assert abs(tokens[kind] / total - weight) < 0.04, (kind, tokens[kind] / total)


def test_rows_are_packed_full_and_document_causal(corpus):
    batches = _take(iter(build_dataset(_config(corpus, MIXTURE))), 20)
    segments = np.stack([b["segment_ids"] for b in batches])
    assert (segments > 0).mean() == 1.0  # no padding in an endless stream
    for b in batches:
        for seg, pos in zip(b["segment_ids"], b["positions"], strict=True):
            starts = np.r_[True, seg[1:] != seg[:-1]]
            assert (pos[starts] == 0).all() and (np.diff(pos)[~starts[1:]] == 1).all()


def test_malformed_records_are_counted_or_fail_the_run(corpus):
    iterator = iter(build_dataset(_config(corpus, [("text", 1.0)], num_epochs=1, batch_size=1)))
    list(iterator)
    assert malformed_counts(iterator.get_state()) == {"text: text record field 'text' is not a string": 1}
    failing = iter(build_dataset(_config(corpus, [("text", 1.0)], num_epochs=1, on_malformed="fail")))
    with pytest.raises(CwmError, match="malformed record in text: text record field 'text'"):
        list(failing)


def test_config_errors_name_the_problem(corpus):
    with pytest.raises(CwmError, match="source 'text': kind 'html'"):
        PipelineConfig(sources=(Source("text", "html", ("x.jsonl",)),), tokenizer="t", seq_len=8, batch_size=1)
    with pytest.raises(CwmError, match="nowhere.jsonl: data file not found"):
        build_dataset(
            PipelineConfig(sources=(Source("t", "text", ("nowhere.jsonl",)),), tokenizer="t", seq_len=8, batch_size=1)
        )


def _global_rows(iterators) -> list[bytes]:
    """One global batch from every process's iterator, as a sorted list of rows (order inside a global batch
    follows the process layout)."""
    return sorted(row.tobytes() for it in iterators for row in next(it)["tokens"])


def test_elastic_batches_keep_their_rows_when_the_process_count_changes(corpus, tmp_path):
    """4 virtual shards, global batch 8: 1, 2 or 4 processes make the same global batches, and a run saved
    by 2 processes resumes on 1 (and on 4) where it was."""

    def processes(count, **kw):
        return [
            ElasticBatches(
                _config(corpus, MIXTURE, batch_size=8 // count, process_index=i, process_count=count, **kw),
                virtual_shards=4,
            )
            for i in range(count)
        ]

    one = processes(1)
    expected = [_global_rows(one) for _ in range(5)]
    assert len(set(expected[0])) == 8 and expected[0] != expected[1]
    for count in (2, 4):
        assert [_global_rows(processes(count)) for _ in range(1)] == expected[:1]
    two = processes(2)
    assert [_global_rows(two) for _ in range(3)] == expected[:3]
    for i, it in enumerate(two):  # what Grain's checkpoint handler writes, one file per process
        (tmp_path / f"process_{i}-of-2.json").write_bytes(it.get_state())
    for count in (1, 4):
        resumed = processes(count)
        for it in resumed:
            it.set_state(merged_state(tmp_path))
        assert [_global_rows(resumed) for _ in range(2)] == expected[3:5]
    with pytest.raises(CwmError, match="'data.virtual_shards' \\(4\\) must be a multiple of the process count \\(3\\)"):
        ElasticBatches(_config(corpus, MIXTURE, batch_size=8, process_count=3), virtual_shards=4)
    (tmp_path / "process_1-of-2.json").unlink()
    with pytest.raises(CwmError, match="lacks virtual shard 1"):
        processes(1)[0].set_state(merged_state(tmp_path))
