"""The rollout engine: continuous batching over a paged KV cache.

A fixed number of decode slots; a waiting request takes a slot as soon as one is free and its worst case
fits the page pools, its prompt is prefilled in chunks between decode calls, and a finished sequence gives
its slot and pages back at once. Requests with the same prompt submitted together form a group: the prompt
is prefilled once and every sample references its pages (copy-on-write at the first page it writes). A
request with a `keep` name leaves its pages cached after it finishes; a later request under that name whose
prompt extends what was cached prefills only the new tokens (an agent's next turn after a tool call).

Each request draws from its own random stream (its key), one split per token, so its tokens depend on its
key and prompt alone, never on what else is in flight.
"""

import collections
import dataclasses
import math
from collections.abc import Hashable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding

from cwm_common.errors import CwmError
from cwm_jax.engine import steps
from cwm_jax.engine.pages import PagePool, SequencePages
from cwm_jax.kv_cache import init_pools, make_layout, pool_bytes_per_page
from cwm_jax.sampling import Sampling
from cwm_jax.sharding import ShardingRules, active_rules, spec_for


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    slots: int = 8  # sequences decoding at once
    max_len: int = 512  # prompt + completion of any request
    page_size: int = 16
    prefill_chunk: int = 64  # prompt tokens a sequence writes per prefill call
    prefill_rows: int = 4  # sequences per prefill call
    decode_steps: int = 8  # tokens per slot per decode call
    pool_sequences: int | None = None  # sequences the pools hold at their longest (default: slots)
    pool_pages: int | None = None  # pages per attention type (default: from pool_sequences)
    ring: bool = True  # local layers keep only the pages their window reaches

    def __post_init__(self):
        for field in ("slots", "max_len", "page_size", "prefill_chunk", "prefill_rows", "decode_steps"):
            if getattr(self, field) < 1:
                raise CwmError(f"engine config field '{field}' must be positive, got {getattr(self, field)}")


@dataclasses.dataclass
class Request:
    prompt: list[int]
    max_new_tokens: int
    key: np.ndarray  # [2] uint32: the request's random stream
    keep: Hashable | None = None  # cache its pages under this name when it finishes


@dataclasses.dataclass
class Completion:
    tokens: list[int]
    logprobs: list[float]  # of each token under the behaviour distribution


class _Group:
    """Requests with one prompt: the first prefills it, the others fork from its prefix."""

    def __init__(self, size: int):
        self.unforked = size - 1
        self.prefix: SequencePages | None = None
        self.logits: jax.Array | None = None  # the prompt's next-token logits
        self.length = 0


class _Sequence:
    def __init__(self, ident: int, request: Request, group: _Group | None, parent: bool):
        self.id, self.request, self.group, self.parent = ident, request, group, parent
        self.pages: SequencePages | None = None
        self.written = 0  # tokens in the cache
        self.slot: int | None = None
        self.tokens: list[int] = []
        self.logprobs: list[float] = []


class Engine:
    def __init__(self, model, config: EngineConfig, sampling: Sampling | None = None, stop_tokens=()):
        cfg = model.cfg
        if config.max_len > cfg.max_seq_len:
            raise CwmError(f"engine max_len ({config.max_len}) exceeds the model's max_seq_len ({cfg.max_seq_len})")
        self.cfg, self.config, self.sampling = cfg, config, sampling or Sampling()
        self.graphdef, self.params = nnx.split(model)
        span = max(config.prefill_chunk, config.decode_steps)
        kinds = sorted(set(cfg.layer_types))
        probe = make_layout(cfg, config.max_len, config.page_size, span, {k: 1 for k in kinds}, config.ring)
        # Each sequence's worst case (its table and a copy-on-write page), and a quarter more for the prompts of
        # groups whose samples still wait for a slot.
        sequences = config.pool_sequences or config.slots
        pages = {k: config.pool_pages or sequences * (probe.width(k) + 1) * 5 // 4 for k in kinds}
        self.layout = make_layout(cfg, config.max_len, config.page_size, span, pages, config.ring)
        self.pools_host = {k: PagePool(pages[k]) for k in kinds}
        place = _placement(self.params)
        self.pools = init_pools(cfg, self.layout, place)
        self.logits = place(jnp.zeros((config.slots, cfg.vocab_size), jnp.float32), (None, None))
        self.tables = {k: np.zeros((config.slots, self.layout.width(k)), np.int32) for k in kinds}
        self.stop_tokens = tuple(stop_tokens)
        self.stop = np.asarray(list(stop_tokens) or [-1], np.int32)
        s = config.slots
        self.keys = np.zeros((s, 2), np.uint32)
        self.lengths, self.counts, self.limits = (np.zeros(s, np.int32) for _ in range(3))
        self.slot_of: list[_Sequence | None] = [None] * s
        self.waiting: collections.deque[_Sequence] = collections.deque()
        self.kept: dict[Hashable, tuple[SequencePages, list[int]]] = {}
        self.finished: dict[int, Completion] = {}
        self.next_id = 0
        self.prefill_tokens = 0  # prompt tokens computed

    # The public interface.

    def submit(self, requests: list[Request]) -> list[int]:
        """Queues requests (identical prompts among them share one prefill); returns their ids."""
        groups: dict[tuple[int, ...], _Group] = {}
        for request in requests:
            if not request.prompt:
                raise CwmError("engine: every prompt needs at least one token")
            if len(request.prompt) + request.max_new_tokens > self.config.max_len:
                raise CwmError(
                    f"engine: prompt ({len(request.prompt)}) + max_new_tokens ({request.max_new_tokens}) exceeds "
                    f"the engine's max_len ({self.config.max_len})"
                )
        counts = collections.Counter(tuple(r.prompt) for r in requests if not self._continues(r))
        ids = []
        for request in requests:
            key = tuple(request.prompt)
            group, parent = None, False
            if not self._continues(request) and counts[key] > 1:
                parent = key not in groups
                group = groups.setdefault(key, _Group(counts[key]))
            sequence = _Sequence(self.next_id, request, group, parent)
            self.next_id += 1
            self.waiting.append(sequence)
            ids.append(sequence.id)
        return ids

    def busy(self) -> bool:
        return bool(self.waiting) or any(s is not None for s in self.slot_of)

    def step(self) -> dict[int, Completion]:
        """Admits what fits, runs prefill calls for about as many tokens as one decode call makes (prompts are
        work that must be done anyway, and a slot waiting for its prompt idles), then one decode call; returns
        the requests that finished."""
        self._admit()
        config = self.config
        calls = max(1, config.slots * config.decode_steps // (config.prefill_rows * config.prefill_chunk))
        for _ in range(calls):
            prefilling = [s for s in self.slot_of if s is not None and s.written < len(s.request.prompt)]
            if not prefilling:
                break
            self._prefill(prefilling[: config.prefill_rows])
            self._admit()  # a group's samples may fork now
        if any(s is not None and s.written >= len(s.request.prompt) for s in self.slot_of):
            self._decode()
        done, self.finished = self.finished, {}
        return done

    def run(self, requests: list[Request]) -> list[Completion]:
        ids = self.submit(requests)
        results: dict[int, Completion] = {}
        while self.busy():
            results.update(self.step())
        return [results[i] for i in ids]

    def release(self, names=None):
        """Drops the cached pages kept under `names` (all by default)."""
        for name in list(self.kept if names is None else names):
            if name in self.kept:
                self.kept.pop(name)[0].release(self.pools_host)

    def stats(self) -> dict:
        per_page = {k: pool_bytes_per_page(self.cfg, k) * self.config.page_size for k in self.pools_host}
        return {
            "prefill_tokens": self.prefill_tokens,
            "pages_in_use": {k: p.in_use for k, p in self.pools_host.items()},
            "pages_free": {k: len(p.free) for k, p in self.pools_host.items()},
            "peak_kv_bytes": sum(p.peak_in_use * per_page[k] for k, p in self.pools_host.items()),
        }

    # Scheduling.

    def _continues(self, request: Request) -> bool:
        if request.keep is None or request.keep not in self.kept:
            return False
        cached = self.kept[request.keep][1]
        return len(request.prompt) >= len(cached) and request.prompt[: len(cached)] == cached

    def _admit(self):
        """Fills free slots: first samples whose group prompt is prefilled (so its pages are shared, not
        held), then the rest in submission order; a sample whose group prompt is not prefilled yet waits
        without holding others back, anything else that does not fit stops admission (no starving)."""
        ready = [s for s in self.waiting if s.group is not None and not s.parent and s.group.prefix is not None]
        for sequence in ready + [s for s in self.waiting if s not in ready]:
            free = [i for i, s in enumerate(self.slot_of) if s is None]
            if not free:
                return
            group = sequence.group
            if group is not None and not sequence.parent and group.prefix is None:
                continue
            spare = sequence.request.keep if self._continues(sequence.request) else None
            while not self._take_pages(sequence) and self._evict_kept(spare):
                pass
            if sequence.pages is None:
                if not any(s is not None for s in self.slot_of) and not self._dissolve_groups():
                    raise CwmError(
                        f"engine: the KV page pools ({self.layout.pool_pages}) cannot hold a request of "
                        f"{len(sequence.request.prompt)} + {sequence.request.max_new_tokens} tokens; raise pool_pages"
                    )
                return
            self.waiting.remove(sequence)
            self._place(sequence, free[0])

    def _dissolve_groups(self) -> bool:
        """Frees the prompts groups hold for samples still waiting (the pools are full and nothing runs): each
        group's next waiting sample becomes its parent and prefills the prompt again. False when no group
        held any."""
        dissolved = False
        for sequence in self.waiting:
            group = sequence.group
            if group is None or sequence.parent or group.prefix is None:
                continue
            group.prefix.release(self.pools_host)
            group.prefix, group.logits = None, None
            sequence.parent = True
            group.unforked -= 1
            dissolved = True
        return dissolved

    def _evict_kept(self, spare) -> bool:
        """Drops a cached sequence to make room (never `spare`, the one the request continues): the oldest no
        waiting request continues, or, when nothing runs that could free pages instead, the oldest; False
        when there is none. A request under an evicted name later prefills its whole prompt again."""
        wanted = {s.request.keep for s in self.waiting}
        running = any(s is not None for s in self.slot_of)
        for name in [n for n in self.kept if n != spare and (n not in wanted or not running)]:
            self.release([name])
            return True
        return False

    def _take_pages(self, sequence: _Sequence) -> bool:
        request, layout, page = sequence.request, self.layout, self.config.page_size
        end = len(request.prompt) + request.max_new_tokens
        kinds = list(self.pools_host)
        group = sequence.group
        fork = group is not None and not sequence.parent
        continues = not fork and self._continues(request)
        if fork:
            assert group is not None and group.prefix is not None
            pages, start = group.prefix.share(self.pools_host), group.length
        elif continues:
            pages, cached = self.kept[request.keep]
            start = len(cached)
        else:
            pages, start = SequencePages.empty(kinds), 0
        need = {}
        for kind in kinds:
            touched = math.ceil(end / page) - start // page
            cow = 1  # a shared page it writes into first, or one shared later with its own group
            if not layout.is_ring(kind):
                need[kind] = touched + cow
                continue
            width = layout.width(kind)
            # It holds at most `width` pages at once, the ones it already holds alone among them (dropping those
            # gives their budget back).
            own = sum(1 for p in pages.mapped[kind].values() if self.pools_host[kind].refs[p] == 1)
            need[kind] = max(0, min(width, own + touched) - own) + cow
            if sequence.parent:  # its prompt's pages stay with the group: dropping them frees nothing
                need[kind] += min(width, math.ceil(len(request.prompt) / page))
        if not pages.reserve(self.pools_host, need):
            if fork:
                pages.release(self.pools_host)  # the fork's extra references
            return False
        if continues:
            del self.kept[request.keep]
            if start == len(request.prompt):  # nothing new: write the last token again for its logits
                start -= 1
        sequence.pages, sequence.written = pages, start
        return True

    def _place(self, sequence: _Sequence, slot: int):
        sequence.slot = slot
        self.slot_of[slot] = sequence
        self.keys[slot] = sequence.request.key
        self.counts[slot] = 0
        self.limits[slot] = sequence.request.max_new_tokens
        self.lengths[slot] = sequence.written
        group = sequence.group
        if group is not None and not sequence.parent:
            self.logits = self.logits.at[slot].set(group.logits)
            group.unforked -= 1
            if group.unforked == 0:
                assert group.prefix is not None
                group.prefix.release(self.pools_host)

    def _table_rows(self, sequence: _Sequence):
        assert sequence.pages is not None and sequence.slot is not None
        for kind, table in self.tables.items():
            sequence.pages.table_row(self.layout, kind, table[sequence.slot])

    def _copies(self, copies: dict[str, list], rows: int) -> dict:
        out = {}
        for kind, pairs in copies.items():
            array = np.zeros((rows, 2), np.int32)
            array[:, 1] = self.layout.pages(kind)  # out of range: no copy
            if pairs:
                array[: len(pairs)] = pairs
            out[kind] = array
        return out

    def _prefill(self, sequences: list[_Sequence]):
        rows, chunk = self.config.prefill_rows, self.config.prefill_chunk
        tokens = np.zeros((rows, chunk), np.int32)
        slots = np.full(rows, self.config.slots, np.int32)
        starts, counts = np.zeros(rows, np.int32), np.zeros(rows, np.int32)
        completes = np.zeros(rows, bool)
        tables = {k: np.zeros((rows, t.shape[1]), np.int32) for k, t in self.tables.items()}
        copies: dict[str, list] = {k: [] for k in self.tables}
        for row, sequence in enumerate(sequences):
            assert sequence.pages is not None and sequence.slot is not None
            prompt = sequence.request.prompt
            n = min(chunk, len(prompt) - sequence.written)
            sequence.pages.prepare(self.pools_host, self.layout, sequence.written, sequence.written + n, copies)
            self._table_rows(sequence)
            for kind in tables:
                tables[kind][row] = self.tables[kind][sequence.slot]
            tokens[row, :n] = prompt[sequence.written : sequence.written + n]
            slots[row], starts[row], counts[row] = sequence.slot, sequence.written, n
            completes[row] = sequence.written + n == len(prompt)
        self.pools, self.logits, last = steps.prefill(
            self.graphdef,
            self.params,
            self.pools,
            self.logits,
            tables,
            self._copies(copies, rows),
            slots,
            tokens,
            starts,
            counts,
            completes,
            layout=self.layout,
        )
        for row, sequence in enumerate(sequences):
            sequence.written += int(counts[row])
            self.lengths[sequence.slot] = sequence.written
            self.prefill_tokens += int(counts[row])
            group = sequence.group
            if completes[row] and group is not None and sequence.parent:
                assert sequence.pages is not None
                group.prefix, group.logits, group.length = (
                    sequence.pages.share(self.pools_host),
                    last[row],
                    sequence.written,
                )
                if group.unforked == 0:
                    group.prefix.release(self.pools_host)

    def _decode(self):
        k = self.config.decode_steps
        copies: dict[str, list] = {kind: [] for kind in self.tables}
        done = np.ones(self.config.slots, bool)
        for slot, sequence in enumerate(self.slot_of):
            if sequence is None or sequence.written < len(sequence.request.prompt):
                continue
            assert sequence.pages is not None
            left = sequence.request.max_new_tokens - len(sequence.tokens)
            if left > 0:
                done[slot] = False
                sequence.pages.prepare(
                    self.pools_host, self.layout, sequence.written, sequence.written + min(k, left), copies
                )
            self._table_rows(sequence)
        before = self.counts.copy()
        out = steps.decode(
            self.graphdef,
            self.params,
            self.pools,
            self.logits,
            self.tables,
            self._copies(copies, self.config.slots),
            self.keys,
            self.lengths,
            self.counts,
            self.limits,
            done,
            self.stop,
            layout=self.layout,
            sampling=self.sampling,
            steps=k,
        )
        self.pools, self.logits = out[0], out[1]
        keys, lengths, counts, finished, tokens, logps = (np.array(x) for x in jax.device_get(out[2:]))
        self.keys, self.lengths, self.counts = keys, lengths, counts
        for slot, sequence in enumerate(self.slot_of):
            if sequence is None or sequence.written < len(sequence.request.prompt):
                continue
            new = int(counts[slot] - before[slot])
            sequence.tokens += tokens[slot, :new].tolist()
            sequence.logprobs += logps[slot, :new].tolist()
            sequence.written = int(lengths[slot])
            if finished[slot] or new == 0:
                self._finish(sequence)

    def _finish(self, sequence: _Sequence):
        assert sequence.pages is not None and sequence.slot is not None
        self.slot_of[sequence.slot] = None
        name = sequence.request.keep
        if name is not None:
            self.release([name])
            for kind, pool in self.pools_host.items():  # kept pages hold no promise of more
                pool.reserved -= sequence.pages.budget[kind]
                sequence.pages.budget[kind] = 0
            self.kept[name] = (sequence.pages, sequence.request.prompt + sequence.tokens)
        else:
            sequence.pages.release(self.pools_host)
        self.finished[sequence.id] = Completion(sequence.tokens, sequence.logprobs)


def _placement(params):
    """How to place the engine's arrays: on the mesh the params live on (KV heads split like attention's),
    or where jax puts them by default."""
    leaf = jax.tree.leaves(params)[0]
    sharding = getattr(leaf, "sharding", None)
    if not isinstance(sharding, NamedSharding):
        return lambda array, axes: array
    mesh = sharding.mesh
    rules = active_rules() or ShardingRules()

    def place(array, axes):
        spec = spec_for(axes, rules.activations, dict(mesh.shape), array.shape, "KV cache", True)
        return jax.device_put(array, NamedSharding(mesh, spec))

    return place
