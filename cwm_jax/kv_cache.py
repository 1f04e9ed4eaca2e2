"""The paged KV cache on device: one pool of fixed-size pages per attention type, shared by every sequence,
and a page table per sequence (the host decides which pages a sequence holds: cwm_jax/engine/pages.py).

Global layers: a sequence's table maps logical page j (positions j*page .. j*page + page - 1) to a physical
page at entry j, and it keeps every page. Sliding-window layers: the table is a ring of `width` entries
(logical page j at entry j % width) wide enough for one step's queries to see their W keys, and the host
returns pages the window no longer reaches, so local memory per sequence follows the window.

Pools follow the layer plan, like the model's layer loop: {"blocks": per block position a (K, V) pair
[n_blocks, n_pages, page, kv_heads, head_dim], "tail": per tail layer a (K, V) pair}.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp

from cwm_jax.config import SLIDING, ModelConfig
from cwm_jax.layer_plan import plan_layers

INVALID = jnp.iinfo(jnp.int32).max  # the position of an empty cache entry: above every query's


@dataclasses.dataclass(frozen=True)
class PageLayout:
    page_size: int
    max_len: int  # positions a sequence may reach
    span: int  # most positions one step writes per sequence (prefill chunk, decode steps)
    window: int | None  # the sliding window local tables are a ring for (None: local layers keep every page)
    pool_pages: tuple[tuple[str, int], ...]  # (attention type, pages in its pool)

    def pages(self, kind: str) -> int:
        return dict(self.pool_pages)[kind]

    def is_ring(self, kind: str) -> bool:
        return kind == SLIDING and self.window is not None and self.width(kind) < self.full_width

    @property
    def full_width(self) -> int:
        return math.ceil(self.max_len / self.page_size)

    def width(self, kind: str) -> int:
        """Table entries per sequence: every page of max_len, or for a window the pages one step's queries
        can reach (W - 1 keys before the first query, the step's own positions, one partial page)."""
        if kind == SLIDING and self.window is not None:
            return min(self.full_width, math.ceil((self.window + self.span - 1) / self.page_size) + 1)
        return self.full_width

    def oldest_page(self, kind: str, start: int) -> int:
        """The oldest logical page queries from position `start` on can see: on a ring, the first one holding
        a key within the window; on a full table, the first."""
        if not self.is_ring(kind) or self.window is None:
            return 0
        return max(0, start - self.window + 1) // self.page_size

    def entry(self, kind: str, logical_page: int) -> int:
        return logical_page % self.width(kind) if self.is_ring(kind) else logical_page


def make_layout(
    cfg: ModelConfig, max_len: int, page_size: int, span: int, pool_pages: dict[str, int], ring: bool = True
) -> PageLayout:
    kinds = tuple(sorted(set(cfg.layer_types)))
    return PageLayout(
        page_size, max_len, span, cfg.sliding_window if ring else None, tuple((k, pool_pages[k]) for k in kinds)
    )


def kv_axes(leading: int) -> tuple[str | None, ...]:
    """Logical axes of a pool array with `leading` stacking axes: pages and their slots are any sequence's,
    KV heads split like the attention that reads them."""
    return (*(None,) * leading, None, None, "kv_heads", "head_dim")


def init_pools(cfg: ModelConfig, layout: PageLayout, place=lambda x, axes: x) -> dict:
    """Zeroed pools; `place(array, logical axes)` puts each where it belongs (a mesh's sharding)."""
    plan = plan_layers(cfg)
    dtype = jnp.dtype(cfg.dtype)

    def kv(kind: str, *lead: int):
        shape = (*lead, layout.pages(kind), layout.page_size, cfg.n_kv_heads, cfg.head_dim)
        return tuple(place(jnp.zeros(shape, dtype), kv_axes(len(lead))) for _ in range(2))

    return {
        "blocks": tuple(kv(cfg.layer_types[k], plan.n_blocks) for k in range(plan.period)),
        "tail": tuple(kv(cfg.layer_types[i]) for i in plan.tail),
    }


def pool_bytes_per_page(cfg: ModelConfig, kind: str) -> int:
    """K and V bytes one page of `kind` holds over every layer of that type, per position."""
    layers = sum(1 for t in cfg.layer_types if t == kind)
    return layers * 2 * cfg.n_kv_heads * cfg.head_dim * jnp.dtype(cfg.dtype).itemsize


@dataclasses.dataclass(frozen=True)
class StepView:
    """Where one step's tokens go and what its queries read, per attention type."""

    write_index: dict  # kind -> [B, C] flat slot (page * page_size + offset); out of range for padding
    tables: dict  # kind -> [B, width] physical pages
    kv_positions: dict  # kind -> [B, width * page] position of each gathered entry, INVALID when empty


jax.tree_util.register_dataclass(StepView, data_fields=["write_index", "tables", "kv_positions"], meta_fields=[])


def step_view(layout: PageLayout, tables: dict, positions: jax.Array, valid: jax.Array) -> StepView:
    """The step's write slots and gathered positions from the sequences' tables [B, width]. A row's cache
    holds every position below its last valid one, and the step's own positions."""
    page = layout.page_size
    last = jnp.max(jnp.where(valid, positions, -1), axis=1)  # [B]; -1: the row is idle
    rows = jnp.arange(positions.shape[0])[:, None]
    write, views, kv_positions = {}, {}, {}
    for kind, table in tables.items():
        width = table.shape[1]
        logical = positions // page
        entry = logical % width if layout.is_ring(kind) else logical
        physical = table[rows, jnp.clip(entry, 0, width - 1)]
        write[kind] = jnp.where(valid, physical * page + positions % page, layout.pages(kind) * page)
        entries = jnp.arange(width)
        if layout.is_ring(kind):
            newest = jnp.maximum(last, 0)[:, None] // page
            held = newest - (newest - entries[None, :]) % width  # the logical page entry e holds now
        else:
            held = jnp.broadcast_to(entries[None, :], (positions.shape[0], width))
        pos = (held[:, :, None] * page + jnp.arange(page)[None, None, :]).reshape(positions.shape[0], -1)
        kv_positions[kind] = jnp.where((pos >= 0) & (pos <= last[:, None]), pos, INVALID)
        views[kind] = table
    return StepView(write, views, kv_positions)


def write_pages(pool_k, pool_v, k, v, write_index, block=None):
    """Writes the step's keys and values [B, C, kv_heads, head_dim] at their flat slots (padding dropped),
    in the pools of one layer ([pages, page, ...]) or, with `block`, in that layer's part of a stack of them
    ([n_blocks, pages, page, ...], updated in place)."""

    def update(pool, x):
        x = x.astype(pool.dtype)
        if block is None:
            flat = pool.reshape(-1, *pool.shape[2:])
            return flat.at[write_index].set(x, mode="drop").reshape(pool.shape)
        flat = pool.reshape(pool.shape[0], -1, *pool.shape[3:])
        return flat.at[block, write_index].set(x, mode="drop").reshape(pool.shape)

    return update(pool_k, k), update(pool_v, v)


def copy_pages(cfg: ModelConfig, pools: dict, copies: dict) -> dict:
    """Copy-on-write: copies[kind] [N, 2] (source page, destination page) applied to every layer of that
    type; a destination out of range is no copy."""
    plan = plan_layers(cfg)

    def copy(pair, kind, stacked: bool):
        src, dst = copies[kind][:, 0], copies[kind][:, 1]
        if stacked:  # [n_blocks, pages, ...]
            return tuple(x.at[:, dst].set(jnp.take(x, src, axis=1, mode="clip"), mode="drop") for x in pair)
        return tuple(x.at[dst].set(jnp.take(x, src, axis=0, mode="clip"), mode="drop") for x in pair)

    return {
        "blocks": tuple(
            copy(pair, cfg.layer_types[k], True) for k, pair in zip(range(plan.period), pools["blocks"], strict=True)
        ),
        "tail": tuple(copy(pair, cfg.layer_types[i], False) for i, pair in zip(plan.tail, pools["tail"], strict=True)),
    }


def pages_held(layout: PageLayout, kind: str, context: int) -> int:
    """Pages a sequence of `context` tokens holds while decoding: all of them on global layers, on a ring the
    ones its window reaches (W keys start inside at most ceil(W / page) + 1 pages)."""
    pages = math.ceil(context / layout.page_size)
    if layout.is_ring(kind):
        assert layout.window is not None
        return min(pages, math.ceil(layout.window / layout.page_size) + 1)
    return pages


def sequence_layout(cfg: ModelConfig, context: int, sequences: int, page_size: int = 16, ring: bool = True):
    """Pools exactly big enough for `sequences` sequences of `context` tokens decoding at once."""
    probe = make_layout(cfg, context, page_size, 1, {k: 1 for k in cfg.layer_types}, ring)
    return make_layout(
        cfg, context, page_size, 1, {k: sequences * pages_held(probe, k, context) for k in cfg.layer_types}, ring
    )


def cache_bytes_per_token(cfg: ModelConfig, context: int, ring: bool = True, bytes_per_value: int = 2) -> float:
    """KV bytes per token of context of one sequence of `context` tokens."""
    layout = sequence_layout(cfg, context, 1, ring=ring)
    per_position = 2 * cfg.n_kv_heads * cfg.head_dim * bytes_per_value
    total = sum(pages_held(layout, t, context) * layout.page_size * per_position for t in cfg.layer_types)
    return total / context
