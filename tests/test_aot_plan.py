import jax
import pytest

from cwm_common.errors import CwmError
from cwm_jax.aot_plan import GIB, plan_memory
from cwm_jax.presets import from_preset


def test_plan_counts_sharded_parameters_and_optimizer_state_exactly():
    cfg = from_preset("cwm-tiny", n_kv_heads=2)
    plan = plan_memory(cfg, {"fsdp": 8}, batch_size=8, seq_len=64)
    # Every parameter has an `embed` dimension, split 8 ways by fsdp: fp32 params / 8 per device.
    assert plan.params_gib * GIB == cfg.param_count() * 4 / 8
    assert abs(plan.optimizer_gib * GIB - 2 * cfg.param_count() * 4 / 8) <= 64  # Adam's two moments (+ counters)
    assert plan.activations_gib > 0 and plan.total_gib >= plan.params_gib + plan.optimizer_gib
    tensor = plan_memory(cfg, {"fsdp": 4, "tensor": 2}, batch_size=8, seq_len=64)
    # Still 8 ways for the matrices; the norm scales (embed only) are now split 4 ways, not 8.
    assert plan.params_gib < tensor.params_gib < 1.01 * plan.params_gib
    assert "fits in 1 GiB" in plan.table(1.0)


def test_plan_rejects_a_mesh_for_other_hardware():
    with pytest.raises(CwmError, match="16 devices, but there are 8"):
        plan_memory(from_preset("cwm-tiny"), {"fsdp": 16}, 8, 64, devices=jax.devices())
