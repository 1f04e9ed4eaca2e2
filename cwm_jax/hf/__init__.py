"""Hugging Face interop: config.json and safetensors in both directions."""
