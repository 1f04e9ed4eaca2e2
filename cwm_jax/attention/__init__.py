"""Attention behind one interface: `attend(q, k, v, *, q_positions, kv_positions, q_segments, kv_segments,
window, block_size)`.

Shapes: q [B, T, heads, head_dim], k and v [B, S, kv_heads, head_dim]; positions and segment ids [B, T]
and [B, S]. Query i sees key j iff they share a segment id, kv_pos <= q_pos, and (for a window W)
q_pos - kv_pos < W. Every implementation computes softmax in fp32 and returns [B, T, heads, head_dim]
in q's dtype.

Implementations, chosen by `ModelConfig.attention_impl`:
- `reference`: explicit [T, S] mask; simple and exact, O(T*S) memory.
- `blockwise`: online softmax over key blocks (self-attention only, T == S, positions rising by one
  inside a document as packing makes them); never builds a T x S mask, skips key blocks outside the
  causal window, and recomputes blocks in the backward pass.
- `ring`: context parallelism: keys and values travel around the mesh axis that splits the sequence,
  folded into each device's queries with the blockwise step; `blockwise` when the sequence is not split.
Accelerator kernels plug in here as further entries with the same signature: a cuDNN flash kernel on GPU
(it must honour segment ids, which `jax.nn.dot_product_attention` does not) and Pallas splash attention
on TPU.
"""

from cwm_jax.attention import blockwise, reference, ring

ATTENTION_IMPLS = {
    "reference": reference.attend,
    "blockwise": blockwise.attend,
    "ring": ring.attend,
}
