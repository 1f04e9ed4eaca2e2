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
  folded into each device's queries with the blockwise step (on a TPU, the splash kernel); `blockwise`
  (splash) when the sequence is not split.
- `splash`: Pallas splash attention, the TPU kernel (TPU interpret mode elsewhere); over a split sequence,
  a ring of splash kernels.
- `cudnn`: cuDNN flash attention on GPU; packed documents as a mask.
- `pallas_gpu`: the Pallas (Triton) GPU flash kernel, which takes segment ids (interpret mode elsewhere);
  local layers run our windowed forward kernel with blockwise's gradient.
- `auto`: splash on TPU, cudnn on GPU, blockwise elsewhere, saying which once.
The kernels mask by index, as blockwise does, and run on each device's slice of a mesh (per_device.py).
"""

from cwm_jax.attention import auto, blockwise, cudnn, pallas_gpu, reference, ring, splash

ATTENTION_IMPLS = {
    "reference": reference.attend,
    "blockwise": blockwise.attend,
    "ring": ring.attend,
    "splash": splash.attend,
    "cudnn": cudnn.attend,
    "pallas_gpu": pallas_gpu.attend,
    "auto": auto.attend,
}
