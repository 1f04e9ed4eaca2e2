"""CWM in JAX/Flax NNX: model, config, Hugging Face interop."""

from cwm_jax.config import ModelConfig, from_mapping
from cwm_jax.engine.generate import generate
from cwm_jax.hf.convert import from_hf, to_hf
from cwm_jax.inference_io import load_model
from cwm_jax.model import CwmModel
from cwm_jax.presets import from_preset

__all__ = ["CwmModel", "ModelConfig", "from_hf", "from_mapping", "from_preset", "generate", "load_model", "to_hf"]
