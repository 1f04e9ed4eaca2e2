"""from_hf onto a mesh: each parameter where the default rules put it, each device's part read from the
files by itself (never a whole tensor), the host holding about one tensor at a time; to_hf back from it."""

import json
import math
import os
import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from hf_fixtures import hf_logits, tiny_hf_config, tiny_hf_model
from jax.sharding import PartitionSpec
from safetensors.numpy import load_file
from transformers import CwmForCausalLM

import cwm_jax
from cwm_cli.main import main
from cwm_common.errors import CwmError
from cwm_data.tokenizer import train_sentencepiece
from cwm_jax.hf.safetensors_dir import INDEX, SafetensorsReader
from cwm_jax.hf.weights import expected_hf_shapes
from cwm_jax.model_checkpoint import save_model
from cwm_jax.sharding import ShardingRules, make_mesh, param_shardings

TOKENS = np.random.default_rng(6).integers(0, 320, (2, 24))
# Every dimension the rules shard divides over fsdp=2 x tensor=4: 8 heads, 4 kv heads, ffn 160, vocab 556
# (the test tokenizer: 300 regular tokens and 256 specials), d 96.
SHARDABLE = dict(vocab_size=556, num_attention_heads=8, num_key_value_heads=4, head_dim=12)
# (path in our tree, its spec under the default rules): a stacked norm, q/k/v/o, an MLP kernel, the ends.
CHECKED = {
    ("embed",): PartitionSpec("tensor", "fsdp"),
    ("lm_head",): PartitionSpec("fsdp", "tensor"),
    ("final_norm", "scale"): PartitionSpec("fsdp"),
    ("layers", "attn_norm", "scale"): PartitionSpec(None, "fsdp"),
    ("layers", "attn", "q"): PartitionSpec(None, "fsdp", "tensor", None),
    ("layers", "attn", "k"): PartitionSpec(None, "fsdp", "tensor", None),
    ("layers", "attn", "v"): PartitionSpec(None, "fsdp", "tensor", None),
    ("layers", "attn", "o"): PartitionSpec(None, "tensor", None, "fsdp"),
    ("layers", "mlp", "down"): PartitionSpec(None, "tensor", "fsdp"),
}


@pytest.fixture(scope="module")
def mesh():
    return make_mesh({"fsdp": 2, "tensor": 4})


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    model = tiny_hf_model(tiny_hf_config(**SHARDABLE))
    path = str(tmp_path_factory.mktemp("hf"))
    model.save_pretrained(path)
    return model, path


def _params(model) -> dict:
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def _at(tree: dict, path: tuple[str, ...]):
    for key in path:
        tree = tree[key]
    return tree


def _assert_same_params(got, want):
    for (path, a), b in zip(
        jax.tree_util.tree_leaves_with_path(_params(got)), jax.tree.leaves(_params(want)), strict=True
    ):
        assert a.dtype == b.dtype and np.array_equal(np.asarray(a), np.asarray(b)), path


def test_params_land_where_the_rules_put_them_with_transformers_logits(hf_dir, mesh):
    hf_model, path = hf_dir
    model = cwm_jax.from_hf(path, mesh=mesh)
    params = _params(model)
    rules = param_shardings(nnx.state(model, nnx.Param), mesh, ShardingRules())
    for where, spec in CHECKED.items():
        array = _at(params, where)
        assert array.sharding == _at(rules, where), where
        assert _at(rules, where).spec == spec, where  # the check is of real splits, not of replication
        parts = {tuple((i.start, i.stop) for i in shard.index) for shard in array.addressable_shards}
        assert len(parts) == (2 if where[-1] == "scale" else 8), where
    _assert_same_params(model, cwm_jax.from_hf(path))  # one device: every part in its place
    expected = hf_logits(hf_model, TOKENS)
    assert np.abs(expected).max() > 5
    assert np.abs(np.asarray(model(jnp.asarray(TOKENS, jnp.int32))) - expected).max() <= 1e-4


def test_bfloat16_loads_sharded_from_bfloat16_and_float32_files(hf_dir, mesh, tmp_path):
    hf_model, path = hf_dir
    CwmForCausalLM.from_pretrained(path, dtype=torch.bfloat16).save_pretrained(str(tmp_path))
    assert SafetensorsReader(str(tmp_path)).read_slice("model.norm.weight", (slice(0, 1),)).dtype == jnp.bfloat16
    from_bf16 = cwm_jax.from_hf(str(tmp_path), dtype="bfloat16", mesh=mesh)
    q = _at(_params(from_bf16), ("layers", "attn", "q"))
    assert q.dtype == jnp.bfloat16 and q.sharding.spec == CHECKED[("layers", "attn", "q")]
    _assert_same_params(from_bf16, cwm_jax.from_hf(str(tmp_path), dtype="bfloat16"))
    _assert_same_params(cwm_jax.from_hf(path, dtype="bfloat16", mesh=mesh), from_bf16)  # cast as torch casts
    expected = hf_logits(hf_model, TOKENS)
    logits = np.asarray(from_bf16(jnp.asarray(TOKENS, jnp.int32)))
    assert np.abs(logits - expected).max() < 0.1 * np.abs(expected).max()  # bf16: as test_hf_roundtrip


def test_a_sharded_model_exports_the_tensors_it_read(hf_dir, mesh, tmp_path):
    hf_model, path = hf_dir
    cwm_jax.to_hf(cwm_jax.from_hf(path, mesh=mesh), str(tmp_path), max_shard_bytes=200_000)
    original = load_file(os.path.join(path, "model.safetensors"))
    exported = SafetensorsReader(str(tmp_path))
    assert exported.names() == set(original)
    for name, tensor in original.items():
        got = exported.get(name)
        assert got.dtype == tensor.dtype and np.array_equal(got, tensor), name
    with open(tmp_path / INDEX) as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
    files = sorted(n for n in os.listdir(tmp_path) if n.endswith(".safetensors"))
    assert len(shards) > 2 and files == shards and not [n for n in os.listdir(tmp_path) if "partial" in n]
    reloaded = CwmForCausalLM.from_pretrained(str(tmp_path)).eval()
    np.testing.assert_array_equal(hf_logits(reloaded, TOKENS), hf_logits(hf_model, TOKENS))


def test_every_device_reads_only_its_own_slice(hf_dir, mesh, monkeypatch):
    _, path = hf_dir
    reads: dict[str, list[tuple[slice, ...]]] = {}
    read_slice = SafetensorsReader.read_slice

    def spy(self, name, box):
        reads.setdefault(name, []).append(box)
        return read_slice(self, name, box)

    def whole(self, name):
        raise AssertionError(f"whole-tensor read of {name}")

    monkeypatch.setattr(SafetensorsReader, "read_slice", spy)
    monkeypatch.setattr(SafetensorsReader, "get", whole)
    model = cwm_jax.from_hf(path, mesh=mesh)
    shapes = expected_hf_shapes(model.cfg)
    assert set(reads) == set(shapes) and model.cfg.n_layers == 5
    for name, boxes in reads.items():
        sizes = [math.prod(s.stop - s.start for s in box) for box in boxes]
        # Every part smaller than the tensor, and the parts add up to it: each element read exactly once
        # (devices holding the same part, e.g. a norm's replicas over `tensor`, share one read).
        assert max(sizes) < math.prod(shapes[name]) == sum(sizes), name
        assert len(boxes) == (2 if len(shapes[name]) == 1 else 8), name


def test_a_mesh_the_dimensions_do_not_divide_is_named_in_one_line(tmp_path, mesh):
    tiny_hf_model(tiny_hf_config()).save_pretrained(str(tmp_path))  # 2 kv heads cannot split 4 ways
    with pytest.raises(CwmError) as error:
        cwm_jax.from_hf(str(tmp_path), mesh=mesh)
    message = str(error.value)
    assert "\n" not in message
    assert "parameter 'layers/attn/k': dimension 2 ('kv_heads', size 2) does not divide over mesh axis tensor" in (
        message
    )


# Per-layer tensors of 4 MiB (the MLP kernels), 76 MiB in all: the host must never hold a whole stack.
BIG = dict(
    vocab_size=512,
    hidden_size=256,
    intermediate_size=4096,
    num_hidden_layers=6,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=32,
)


def test_host_memory_stays_about_one_tensor_while_loading(tmp_path, mesh):
    model = tiny_hf_model(tiny_hf_config(**BIG))
    model.save_pretrained(str(tmp_path))
    largest = max(p.numel() * 4 for p in model.parameters())
    total = sum(p.numel() * 4 for p in model.parameters())
    del model
    cwm_jax.from_hf(str(tmp_path), mesh=mesh)  # compiles the layer writes: measured below is the load alone
    tracemalloc.start()
    try:
        loaded = cwm_jax.from_hf(str(tmp_path), mesh=mesh)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(x.nbytes for x in jax.tree.leaves(_params(loaded))) == total
    print(
        f"\nfrom_hf onto fsdp=2 x tensor=4: host peak {peak / 2**20:.2f} MiB ({peak / largest:.2f}x the largest "
        f"tensor, {largest / 2**20:.2f} MiB); model {total / 2**20:.1f} MiB ({total / largest:.0f}x); "
        f"still held after {held / 2**20:.2f} MiB"
    )
    assert total > 15 * largest
    assert peak < 2.5 * largest


def test_generate_takes_a_mesh_and_names_a_bad_one(hf_dir, tmp_path, capsys):
    _, path = hf_dir
    tokenizer = str(tmp_path / "sp.model")
    train_sentencepiece([f"doc {i} says hello world" for i in range(60)], 300, tokenizer)
    argv = ["generate", "--hf", path, "--tokenizer", tokenizer, "--prompt", "doc 3", "--max-new-tokens", "6"]
    assert main(argv) == 0
    one_device = capsys.readouterr().out
    assert main([*argv, "--mesh", "tensor=4,fsdp=-1"]) == 0
    assert capsys.readouterr().out == one_device
    for bad, why in [
        ("tensor=four", "'tensor=four' is not axis=size"),
        ("model=2", "'model=2' names no mesh axis; axes: data, fsdp, tensor, sequence"),
        ("tensor=0", "'tensor=0' must be a positive size or -1"),
        ("tensor=3", "fsdp=1 x tensor=3 x sequence=1 = 3 devices, but there are 8"),
        ("tensor=3,fsdp=2", "tensor=3 x sequence=1 = 6 devices, but there are 8"),
    ]:
        assert main([*argv, "--mesh", bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.count("--mesh") == 1 and why in err, err
        assert err.startswith("cwm generate: error: --mesh"), err


def test_a_cwm_model_directory_loads_onto_the_mesh_too(hf_dir, mesh, tmp_path):
    _, path = hf_dir
    one_device = cwm_jax.from_hf(path)
    save_model(one_device, str(tmp_path / "cwm"))
    restored = cwm_jax.load_model(str(tmp_path / "cwm"), mesh=mesh)
    sharded = cwm_jax.load_model(path, mesh=mesh)
    for where in CHECKED:
        assert _at(_params(restored), where).sharding == _at(_params(sharded), where).sharding, where
    _assert_same_params(restored, one_device)
