"""What the paged kernels share: a step's queries as rows per KV head, the flat view of a stack of pools, and
the masks from the positions the step view gives each entry."""

import jax.numpy as jnp


def flat_pools(pool_k, pool_v, block, table):
    """A stack of pools [n_blocks, pages, ...] as one pool and this layer's table offset into it (a free
    reshape: a stack's layers are contiguous); a single layer's pools unchanged."""
    if block is None:
        return pool_k, pool_v, table
    pages = pool_k.shape[1]
    return pool_k.reshape(-1, *pool_k.shape[2:]), pool_v.reshape(-1, *pool_v.shape[2:]), table + block * pages


def query_rows(q, q_positions, kv_heads: int, padded_to):
    """q [B, C, H, D] as [B, KV, R, D]: each KV head's group of query heads x the step's tokens, padded to
    padded_to(rows) rows, with their positions [B, KV, R] (-1 for padding: it sees nothing)."""
    b, c, heads, dim = q.shape
    group = heads // kv_heads
    rows = group * c
    padded = padded_to(rows)
    q_rows = q.reshape(b, c, kv_heads, group, dim).transpose(0, 2, 3, 1, 4).reshape(b, kv_heads, rows, dim)
    pos_rows = jnp.broadcast_to(q_positions[:, None, None, :], (b, kv_heads, group, c)).reshape(b, kv_heads, rows)
    q_rows = jnp.pad(q_rows, ((0, 0), (0, 0), (0, padded - rows), (0, 0)))
    pos_rows = jnp.pad(pos_rows, ((0, 0), (0, 0), (0, padded - rows)), constant_values=-1)
    return q_rows, pos_rows


def from_rows(out, q_shape):
    """[B, KV, R, D] rows back to [B, C, H, D]."""
    b, c, heads, dim = q_shape
    kv_heads = out.shape[1]
    out = out[:, :, : heads // kv_heads * c].reshape(b, kv_heads, heads // kv_heads, c, dim)
    return out.transpose(0, 3, 1, 2, 4).reshape(q_shape)


def any_seen(seen):
    """Whether any row sees any entry (a max: Triton has no boolean or-reduction)."""
    return jnp.max(seen.astype(jnp.int32)) > 0


def visible(kv_pos, q_pos, window):
    """[R, page]: which of a page's entries each row sees (an empty entry holds a position above any query's)."""
    seen = kv_pos[None, :] <= q_pos[:, None]
    if window is not None:
        seen &= q_pos[:, None] - kv_pos[None, :] < window
    return seen
