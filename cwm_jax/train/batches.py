"""Training batches for this process: synthetic tokens, the shipped corpus, or the user's Grain sources.

Every source is an iterator of numpy dicts (tokens, segment_ids, positions, loss_mask: [local_batch, T])
with get_state/set_state, so the data position is saved with each checkpoint.
"""

import json
import os

import jax
import numpy as np
from jax.experimental import multihost_utils

from cwm_data.pipeline.elastic_batches import ElasticBatches, state_files
from cwm_data.pipeline.input_pipeline import PipelineConfig, Source, build_dataset
from cwm_data.shipped_corpus import build_shipped_corpus


class SyntheticBatches:
    """Random tokens that depend only on (seed, step): the global batch is the same for any number of
    processes, each taking its own rows. The state is the step."""

    def __init__(self, vocab_size: int, batch: int, seq_len: int, seed: int, process_index: int, process_count: int):
        self.vocab_size, self.batch, self.seq_len = vocab_size, batch, seq_len
        self.seed, self.process_index, self.process_count, self.step = seed, process_index, process_count, 0

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.step])
        self.step += 1
        rows = rng.integers(0, self.vocab_size, (self.batch * self.process_count, self.seq_len), dtype=np.int32)
        shape = (self.batch, self.seq_len)
        return {
            "tokens": rows[self.process_index * self.batch : (self.process_index + 1) * self.batch],
            "segment_ids": np.ones(shape, np.int32),
            "positions": np.broadcast_to(np.arange(self.seq_len, dtype=np.int32), shape).copy(),
            "loss_mask": np.ones(shape, np.int32),
        }

    # The Grain checkpoint handler's protocol for iterators that are not Grain's own.
    def get_state(self) -> bytes:
        return json.dumps({"step": self.step}).encode()

    def set_state(self, state: bytes):
        self.step = json.loads(state)["step"]

    def start_prefetch(self):
        pass

    def set_state_from_files(self, directory):
        """Every process saved the same step: any process count restores from any file."""
        self.set_state(state_files(directory)[0].read_bytes())


def make_batches(cfg, workdir: str, local_batch: int):
    data = cfg.data
    index, count = jax.process_index(), jax.process_count()
    if data.kind == "synthetic":
        return SyntheticBatches(cfg.model.vocab_size, local_batch, data.seq_len, cfg.seed, index, count)
    if data.kind == "shipped":
        corpus_dir = data.shipped_dir or os.path.join(workdir, "data")
        if index == 0:
            build_shipped_corpus(corpus_dir, data.tokenizer_vocab)
        if count > 1:
            multihost_utils.sync_global_devices("shipped corpus built")  # the others read what process 0 wrote
        built = build_shipped_corpus(corpus_dir, data.tokenizer_vocab)
        kinds = ["agent"] if cfg.mode == "sft" else ["trace", "agent", "text"]
        sources = tuple(Source(k, k, tuple(built[k]), data.weights[k]) for k in kinds)
        tokenizer = built["tokenizer"]
    else:
        sources = tuple(Source(s["name"], s["kind"], tuple(s["paths"]), s.get("weight", 1.0)) for s in data.sources)
        tokenizer = data.tokenizer
    pipeline = PipelineConfig(
        sources=sources,
        tokenizer=tokenizer,
        seq_len=data.seq_len,
        batch_size=local_batch,
        seed=cfg.seed,
        num_workers=data.num_workers,
        keep_observation_prob=data.keep_observation_prob,
        process_index=index,
        process_count=count,
    )
    if data.virtual_shards:
        return ElasticBatches(pipeline, data.virtual_shards)
    return iter(build_dataset(pipeline))


def global_batch(local: dict[str, np.ndarray], sharding) -> dict[str, jax.Array]:
    """One global array per field from this process's rows."""
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local.items()}
