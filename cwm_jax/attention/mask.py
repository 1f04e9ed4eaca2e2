"""Which keys each query may see: same document, causal, inside the sliding window."""

import jax


def visibility(
    q_positions: jax.Array, kv_positions: jax.Array, q_segments: jax.Array, kv_segments: jax.Array, window: int | None
) -> jax.Array:
    """Boolean [B, T, S]: query t may attend to key s."""
    qp, kp = q_positions[:, :, None], kv_positions[:, None, :]
    visible = (q_segments[:, :, None] == kv_segments[:, None, :]) & (kp <= qp)
    if window is not None:
        visible &= qp - kp < window
    return visible
