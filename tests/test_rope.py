import jax.numpy as jnp
import numpy as np
from transformers import CwmConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from cwm_jax.presets import from_preset
from cwm_jax.rope import apply_rotary, inverse_frequencies, rotary_tables


def test_llama3_frequencies_match_transformers_for_cwm_32b():
    ours = inverse_frequencies(from_preset("cwm-32b"))
    theirs, scaling = ROPE_INIT_FUNCTIONS["llama3"](CwmConfig())
    assert scaling == 1.0
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-6)
    # CWM.md (derived): 27 of 64 pairs unchanged, 30 divided by 16, 7 blended.
    plain = inverse_frequencies(from_preset("cwm-32b", rope_type="default"))
    ratio = plain / ours
    assert (np.isclose(ratio, 1.0).sum(), np.isclose(ratio, 16.0).sum()) == (27, 30)


def test_rotation_is_half_split_and_preserves_norm():
    cfg = from_preset("cwm-tiny")
    x = np.random.default_rng(0).normal(size=(1, 5, 2, cfg.head_dim)).astype(np.float32)
    positions = jnp.arange(5)[None]
    out = np.asarray(apply_rotary(jnp.asarray(x), *rotary_tables(cfg, positions)))
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)
    np.testing.assert_allclose(out[:, 0], x[:, 0], atol=1e-6)  # position 0 is the identity
    # Element k pairs with k + head_dim/2, rotated by angle pos * inv_freq[k].
    half, k, pos = cfg.head_dim // 2, 3, 4
    angle = pos * inverse_frequencies(cfg)[k]
    a, b = x[0, pos, 0, k], x[0, pos, 0, k + half]
    np.testing.assert_allclose(
        out[0, pos, 0, [k, k + half]],
        [a * np.cos(angle) - b * np.sin(angle), b * np.cos(angle) + a * np.sin(angle)],
        rtol=1e-5,
    )
    # Attention scores depend only on the relative position.
    q, kk = np.random.default_rng(1).normal(size=(2, cfg.head_dim)).astype(np.float32)

    def score(pq, pk):
        def tables(p):
            return rotary_tables(cfg, jnp.array([[p]]))

        rq = apply_rotary(jnp.asarray(q)[None, None, None], *tables(pq))
        rk = apply_rotary(jnp.asarray(kk)[None, None, None], *tables(pk))
        return float(jnp.sum(rq * rk))

    assert abs(score(7, 3) - score(20, 16)) < 1e-4
