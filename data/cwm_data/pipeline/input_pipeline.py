"""Builds the training input: per source shard -> shuffle -> documents; mix; drop malformed; pack; batch.

- Sources are ArrayRecord (`.arrayrecord`) or JSON Lines (`.jsonl`) files of one record kind each.
- Process sharding: source records are split by (process_index, process_count) before shuffling, so the
  processes of a job together see every record exactly once per epoch.
- Shuffling is global within a process's shard and reseeded each epoch.
- Mixture weights are token fractions: document sampling rates are divided by each source's mean document
  length (estimated from its first records), so e.g. weight 0.3 on traces means ~30% of trained tokens.
- Packing concatenates documents and splits them at `seq_len`: rows are full (no padding); `segment_ids`
  mark documents (document-causal attention) and `positions` count tokens within each document.
- With `num_workers` processes, each makes whole batches from its slice of the records; the iterator's
  state (get_state/set_state) restores the stream exactly, including the malformed-record counts
  (`malformed_counts(state)` sums them).
"""

import dataclasses
import functools
import os
from typing import Any

import grain
import numpy as np
from array_record.python.array_record_data_source import ArrayRecordDataSource

from cwm_common.errors import CwmError
from cwm_data.pipeline.documents import KINDS, to_document
from cwm_data.pipeline.jsonl_source import JsonlSource
from cwm_data.pipeline.skip_malformed import MALFORMED, SkipMalformedIterDataset
from cwm_data.shards import check_shard
from cwm_data.tokenizer import CwmTokenizer

LENGTH_SAMPLE = 64  # records per source used to estimate its mean document length


@dataclasses.dataclass(frozen=True)
class Source:
    name: str
    kind: str  # trace | agent | text
    paths: tuple[str, ...]
    weight: float = 1.0


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    sources: tuple[Source, ...]
    tokenizer: str  # path of a SentencePiece model or a tiktoken rank file
    seq_len: int
    batch_size: int
    seed: int = 0
    num_epochs: int | None = None  # None: repeat forever; a number needs a single source
    num_workers: int = 0
    on_malformed: str = "skip"  # or "fail"
    keep_observation_prob: float = 0.0
    process_index: int = 0
    process_count: int = 1

    def __post_init__(self):
        if not self.sources:
            raise CwmError("data config: 'sources' is empty")
        for s in self.sources:
            if s.kind not in KINDS:
                raise CwmError(f"data source '{s.name}': kind {s.kind!r} is not one of {', '.join(KINDS)}")
            if not s.weight > 0:
                raise CwmError(f"data source '{s.name}': weight must be > 0, got {s.weight}")
            if not s.paths:
                raise CwmError(f"data source '{s.name}': no paths")
        if self.on_malformed not in ("skip", "fail"):
            raise CwmError(f"data config: on_malformed is {self.on_malformed!r}; use 'skip' or 'fail'")
        if not 0 <= self.process_index < self.process_count:
            raise CwmError(f"data config: process_index {self.process_index} not in [0, {self.process_count})")
        if self.num_epochs is not None and len(self.sources) > 1:
            raise CwmError("data config: num_epochs needs a single source (a mixture repeats forever)")
        for name in ("seq_len", "batch_size"):
            if getattr(self, name) <= 0:
                raise CwmError(f"data config: {name} must be > 0")

    @classmethod
    def from_dict(cls, d: Any) -> "PipelineConfig":
        d = dict(d)
        sources = tuple(
            Source(name=s["name"], kind=s["kind"], paths=tuple(s["paths"]), weight=s.get("weight", 1.0))
            for s in d.pop("sources")
        )
        return cls(sources=sources, **d)


def open_source(paths: tuple[str, ...]):
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise CwmError(f"{missing[0]}: data file not found")
    if all(p.endswith(".jsonl") for p in paths):
        return JsonlSource(list(paths))
    if all(p.endswith(".arrayrecord") for p in paths):
        for path in paths:
            check_shard(path)
        return ArrayRecordDataSource(list(paths))
    raise CwmError(f"{paths[0]}: data files must all be .jsonl or all .arrayrecord")


class _Documents:
    """record -> document, or a malformed marker; loads the tokenizer once per worker process."""

    def __init__(self, source: Source, tokenizer_path: str, keep_observation_prob: float, seed: int):
        self.source, self.tokenizer_path = source, tokenizer_path
        self.keep_observation_prob, self.seed = keep_observation_prob, seed

    @functools.cached_property
    def tokenizer(self) -> CwmTokenizer:
        return CwmTokenizer.load(self.tokenizer_path)

    def __call__(self, raw) -> dict:
        try:
            return to_document(raw, self.source.kind, self.tokenizer, self.keep_observation_prob, self.seed)
        except (CwmError, ValueError, TypeError, KeyError) as e:
            return {MALFORMED: str(e).split("\n")[0][:200], "source": self.source.name}

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "tokenizer"}


def _mean_length(docs: grain.MapDataset, count: int) -> float:
    lengths = [len(d["tokens"]) for d in (docs[i] for i in range(min(count, LENGTH_SAMPLE))) if MALFORMED not in d]
    return float(np.mean(lengths)) if lengths else 1.0


def build_dataset(cfg: PipelineConfig) -> grain.IterDataset:
    per_source, rates = [], []
    for k, source in enumerate(cfg.sources):
        records = grain.MapDataset.source(open_source(source.paths))
        n = len(records)
        if n < cfg.process_count:
            raise CwmError(f"data source '{source.name}' has {n} records for {cfg.process_count} processes")
        docs_fn = _Documents(source, cfg.tokenizer, cfg.keep_observation_prob, cfg.seed)
        rates.append(source.weight / _mean_length(records.map(docs_fn), n))
        shard = records[cfg.process_index :: cfg.process_count]
        shard = shard.shuffle(seed=cfg.seed + 7919 * k).repeat(cfg.num_epochs)
        per_source.append(shard.map(docs_fn))
    mixed = per_source[0] if len(per_source) == 1 else grain.MapDataset.mix(per_source, rates)
    # Documents are made in Python (GIL-bound): reader threads only add contention; worker processes scale.
    stream = mixed.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
    stream = SkipMalformedIterDataset(stream, fail=cfg.on_malformed == "fail")
    packed = grain.experimental.ConcatThenSplitIterDataset(
        stream, length_struct={"tokens": cfg.seq_len, "loss_mask": cfg.seq_len}
    )
    batches = packed.map(_row).batch(cfg.batch_size, drop_remainder=True)
    if cfg.num_workers > 0:
        # Each worker makes whole batches from its slice of the records: only full batches cross processes.
        _allow_worker_processes()
        batches = batches.mp_prefetch(grain.MultiprocessingOptions(num_workers=cfg.num_workers))
    return batches


def malformed_counts(state) -> dict[str, int]:
    """Malformed records skipped so far, summed over worker processes, from an iterator's state."""
    totals: dict[str, int] = {}

    def visit(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "malformed" and isinstance(value, dict):
                    for reason, count in value.items():
                        totals[reason] = totals.get(reason, 0) + count
                else:
                    visit(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                visit(value)

    visit(state)
    return totals


def _row(packed: dict) -> dict[str, np.ndarray]:
    return {
        "tokens": packed["tokens"],
        "segment_ids": packed["tokens_segment_ids"].astype(np.int32),
        "positions": packed["tokens_positions"].astype(np.int32),
        "loss_mask": packed["loss_mask"],
    }


def _allow_worker_processes():
    # Grain's workers read absl flags; a program that never parsed them (a notebook, pytest) must say so.
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
