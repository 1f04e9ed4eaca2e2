"""ModelConfig: the shape of a CWM model plus how to run it, validated at construction."""

import dataclasses
from collections.abc import Mapping
from typing import Any

from cwm_common.config_rules import config_error
from cwm_common.errors import CwmError

# The fields that say how a model runs, not what it computes (beyond float rounding): a run may set them for
# a model it loads.
EXECUTION_FIELDS = ("param_dtype", "dtype", "attention_impl", "attention_block_size", "scan_layers", "remat")
FULL = "full_attention"
SLIDING = "sliding_attention"
LAYER_TYPES = (FULL, SLIDING)
ROPE_TYPES = ("default", "llama3")
DTYPES = ("float32", "bfloat16", "float16")
REMAT_POLICIES = ("none", "full", "save_dots")


def interleaved_layer_types(n_layers: int, global_every: int = 4) -> tuple[str, ...]:
    """CWM's 3:1 local:global pattern (HF default): layer i is global iff i % global_every == 0."""
    return tuple(FULL if i % global_every == 0 else SLIDING for i in range(n_layers))


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    # Architecture (what a Hugging Face config.json describes).
    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn_dim: int
    layer_types: tuple[str, ...]
    sliding_window: int = 8192
    max_seq_len: int = 131072
    rms_norm_eps: float = 1e-5
    rope_type: str = "llama3"
    rope_theta: float = 1_000_000.0
    rope_factor: float = 16.0
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    rope_original_max_len: int = 8192
    init_std: float = 0.02
    bos_token_id: int | None = 128000
    eos_token_ids: tuple[int, ...] = (128001, 128008, 128009)
    pad_token_id: int | None = None
    # Execution (no effect on the function the model computes, beyond float rounding).
    param_dtype: str = "float32"
    dtype: str = "float32"
    attention_impl: str = "reference"
    attention_block_size: int = 512
    scan_layers: bool = True
    remat: str = "none"

    def __post_init__(self):
        # Lists from JSON or ConfigDicts become tuples so the config stays hashable (it is a jit static).
        object.__setattr__(self, "layer_types", tuple(self.layer_types))
        object.__setattr__(self, "eos_token_ids", tuple(self.eos_token_ids))
        self._validate()

    def _validate(self):
        for name in (
            "vocab_size",
            "d_model",
            "n_layers",
            "n_heads",
            "n_kv_heads",
            "head_dim",
            "ffn_dim",
            "sliding_window",
            "max_seq_len",
            "attention_block_size",
            "rope_original_max_len",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                _fail(name, f"must be a positive integer, got {value!r}")
        for name in ("rms_norm_eps", "rope_theta", "init_std"):
            if not getattr(self, name) > 0:
                _fail(name, f"must be > 0, got {getattr(self, name)!r}")
        if self.n_heads % self.n_kv_heads:
            _fail("n_heads", f"({self.n_heads}) must be divisible by n_kv_heads ({self.n_kv_heads})")
        if self.head_dim % 2:
            _fail("head_dim", f"must be even for rotary embeddings, got {self.head_dim}")
        if len(self.layer_types) != self.n_layers:
            _fail("layer_types", f"has {len(self.layer_types)} entries but n_layers is {self.n_layers}")
        for i, kind in enumerate(self.layer_types):
            if kind not in LAYER_TYPES:
                _fail("layer_types", f"entry {i} is {kind!r}; allowed: {', '.join(LAYER_TYPES)}")
        if self.sliding_window > self.max_seq_len:
            _fail("sliding_window", f"({self.sliding_window}) is larger than max_seq_len ({self.max_seq_len})")
        if self.rope_type not in ROPE_TYPES:
            _fail("rope_type", f"is {self.rope_type!r}; allowed: {', '.join(ROPE_TYPES)}")
        if self.rope_type == "llama3":
            if not self.rope_factor >= 1:
                _fail("rope_factor", f"must be >= 1 for llama3 scaling, got {self.rope_factor}")
            if not 0 < self.rope_low_freq_factor < self.rope_high_freq_factor:
                _fail(
                    "rope_high_freq_factor",
                    f"({self.rope_high_freq_factor}) must exceed "
                    f"rope_low_freq_factor ({self.rope_low_freq_factor}) > 0",
                )
        for name in ("param_dtype", "dtype"):
            if getattr(self, name) not in DTYPES:
                _fail(name, f"is {getattr(self, name)!r}; allowed: {', '.join(DTYPES)}")
        if self.remat not in REMAT_POLICIES:
            _fail("remat", f"is {self.remat!r}; allowed: {', '.join(REMAT_POLICIES)}")
        from cwm_jax.attention import ATTENTION_IMPLS  # late: attention imports jax, config need not

        if self.attention_impl not in ATTENTION_IMPLS:
            _fail("attention_impl", f"is {self.attention_impl!r}; allowed: {', '.join(ATTENTION_IMPLS)}")

    @property
    def q_per_kv(self) -> int:
        return self.n_heads // self.n_kv_heads

    def window_of(self, layer: int) -> int | None:
        """Keys a query of this layer may see (itself included), or None for unbounded causal."""
        return self.sliding_window if self.layer_types[layer] == SLIDING else None

    def replace(self, **changes: Any) -> "ModelConfig":
        return from_mapping({**dataclasses.asdict(self), **changes})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["layer_types"] = list(self.layer_types)
        d["eos_token_ids"] = list(self.eos_token_ids)
        return d

    def layer_params(self) -> int:
        attn = self.d_model * self.head_dim * (2 * self.n_heads + 2 * self.n_kv_heads)
        return attn + 3 * self.d_model * self.ffn_dim + 2 * self.d_model

    def non_embedding_params(self) -> int:
        """Parameters outside the embedding and the output head (what scaling laws count)."""
        return self.n_layers * self.layer_params() + self.d_model

    def param_count(self) -> int:
        """Exact parameter count from the shape alone (no arrays are built)."""
        return self.non_embedding_params() + 2 * self.vocab_size * self.d_model


def _fail(field: str, rule: str):
    raise config_error(field, rule, kind="model config")


def from_mapping(values: Mapping[str, Any]) -> ModelConfig:
    """Builds a ModelConfig from a dict or ConfigDict, naming any field it does not know or lacks."""
    values = dict(values)
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise CwmError(f"model config has unknown field(s): {', '.join(unknown)}")
    required = [
        f.name for f in dataclasses.fields(ModelConfig) if f.default is dataclasses.MISSING and f.name not in values
    ]
    if required:
        raise CwmError(f"model config lacks required field(s): {', '.join(required)}")
    return ModelConfig(**values)
