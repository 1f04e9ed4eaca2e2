"""Policy weights for actors in other processes: params-only Orbax versions written shard by shard, restored
into another mesh's shardings, and never read before they are committed."""

import os
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cwm_jax.model import CwmModel
from cwm_jax.presets import from_preset
from cwm_jax.sharding import ShardingRules, make_mesh, param_shardings
from cwm_rl.sampler_layout import SamplerLayout
from cwm_rl.weight_channels import COMMITTED, WeightVersions

CFG = from_preset("cwm-tiny")


def _learner_params(seed: int):
    """Params on the learner's mesh (data 2, fsdp 4), as the learner holds them."""
    abstract = nnx.eval_shape(lambda: CwmModel(CFG, nnx.Rngs(0)))
    shardings = param_shardings(nnx.state(abstract, nnx.Param), make_mesh({"data": 2, "fsdp": 4}), ShardingRules())
    return jax.device_put(nnx.to_pure_dict(nnx.state(CwmModel(CFG, nnx.Rngs(seed)), nnx.Param)), shardings)


def _child(code: str, directory, devices: int) -> subprocess.Popen:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    preamble = "import sys, jax, numpy as np\nfrom cwm_rl.weight_channels import WeightVersions\n"
    return subprocess.Popen(
        [sys.executable, "-c", preamble + textwrap.dedent(code), str(directory)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_an_actor_on_another_mesh_restores_each_version_in_the_sampler_dtype(tmp_path):
    versions = WeightVersions(str(tmp_path), keep=2)
    abstract = nnx.state(nnx.eval_shape(lambda: CwmModel(CFG, nnx.Rngs(0))), nnx.Param)
    layout = SamplerLayout(abstract, {"tensor": -1}, ShardingRules(), "bfloat16")
    published = {}
    for version in range(3):
        published[version] = layout.place(_learner_params(version))
        versions.publish(version, published[version])
    assert versions.versions() == [1, 2]  # the oldest removed
    assert sorted(os.listdir(tmp_path)) == ["version-1", "version-2"]
    # An actor with 2 devices restores version 2 into its own tensor-parallel layout, in bfloat16.
    child = _child(
        """
        from flax import nnx
        from cwm_jax.model import CwmModel
        from cwm_jax.presets import from_preset
        from cwm_jax.sharding import ShardingRules, make_mesh
        from cwm_rl.sampler_layout import SamplerLayout
        cfg = from_preset("cwm-tiny")
        abstract = nnx.state(nnx.eval_shape(lambda: CwmModel(cfg, nnx.Rngs(0))), nnx.Param)
        layout = SamplerLayout(abstract, {"tensor": -1}, ShardingRules(), "bfloat16")
        version, params = WeightVersions(sys.argv[1]).latest(layout.abstract)
        up = params["layers"]["mlp"]["up"]
        assert up.dtype == jax.numpy.bfloat16 and len(up.sharding.device_set) == 2, up.sharding
        assert up.sharding.shard_shape(up.shape)[-1] == up.shape[-1] // 2
        np.save(sys.argv[1] + "/../restored.npy", np.asarray(up, np.float32))
        print(version)
        """,
        tmp_path,
        devices=2,
    )
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err[-3000:]
    assert int(out.split()[-1]) == 2
    want = np.asarray(published[2]["layers"]["mlp"]["up"], np.float32)
    np.testing.assert_array_equal(np.load(tmp_path.parent / "restored.npy"), want)
    assert published[2]["layers"]["mlp"]["up"].dtype == jnp.bfloat16


def test_a_version_from_another_run_is_refused(tmp_path):
    versions = WeightVersions(str(tmp_path))
    params = {"w": jnp.ones((4, 4))}
    versions.publish(3, params)
    (tmp_path / "version-3" / COMMITTED).write_text('{"version": 7, "leaves": 1, "dtype": "float32"}')
    with pytest.raises(Exception, match="version-3: holds version 7 with 1 arrays; expected version 3"):
        versions.latest(jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params))


KILLED_WRITER = """
params = {"w": jax.numpy.full((2048, 2048), 1.0), "b": jax.numpy.zeros((7,))}
versions = WeightVersions(sys.argv[1])
versions.publish(1, params)
print("published 1", flush=True)
if sys.argv[2:] == ["before-commit"]:
    import os
    real_replace = os.replace
    os.replace = lambda *a, **k: os.kill(os.getpid(), 9)  # dies at the first rename of version 2's writing
for k in range(2, 1000):
    versions.publish(k, {"w": params["w"] * k, "b": params["b"]})
"""


@pytest.mark.parametrize("when", ["before-commit", "while-writing"])
def test_a_learner_killed_while_writing_leaves_nothing_an_actor_reads(tmp_path, when):
    env = dict(os.environ)
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, jax\nfrom cwm_rl.weight_channels import WeightVersions\n" + KILLED_WRITER]
        + [str(tmp_path), when],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "published 1"
    if when == "while-writing":
        # Kill it as soon as a second version is being written (Orbax's temporary folder or the final one).
        while not [name for name in os.listdir(tmp_path) if not name.startswith("version-1")]:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
        child.send_signal(signal.SIGKILL)
    child.wait(timeout=120)
    assert child.returncode == -signal.SIGKILL
    versions = WeightVersions(str(tmp_path))
    committed = versions.versions()
    target = {"w": jax.ShapeDtypeStruct((2048, 2048), jnp.float32), "b": jax.ShapeDtypeStruct((7,), jnp.float32)}
    version, params = versions.latest(target)
    assert version == committed[-1] and (when == "while-writing" or committed == [1])
    np.testing.assert_array_equal(np.asarray(params["w"]), np.full((2048, 2048), float(version), np.float32))


TWO_LEARNERS = """
import sys
from cwm_jax import distributed
distributed.initialize()
import jax, numpy as np
from cwm_jax.sharding import make_mesh
from cwm_rl.weight_channels import WeightVersions
sharding = jax.sharding.NamedSharding(make_mesh({"fsdp": 4}), jax.sharding.PartitionSpec("fsdp"))
values = np.arange(64 * 3, dtype=np.float32).reshape(64, 3)
params = {"w": jax.make_array_from_callback(values.shape, sharding, lambda index: values[index])}
assert not params["w"].is_fully_addressable  # each process holds half of it
WeightVersions(sys.argv[1]).publish(5, params)
print("process", jax.process_index(), "published", flush=True)
"""


def test_learner_processes_write_one_version_together(tmp_path):
    """Two processes (launch/local.py, 2 devices each) each write the shards they hold of one version."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    launch = [sys.executable, "launch/local.py", "--num-processes", "2", "--cpu-devices", "2", "--"]
    done = subprocess.run(
        [*launch, sys.executable, "-c", TWO_LEARNERS, str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "[p0] process 0 published" in done.stdout and "[p1] process 1 published" in done.stdout
    here = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = {"w": jax.ShapeDtypeStruct((64, 3), jnp.float32, sharding=here)}
    version, params = WeightVersions(str(tmp_path)).latest(target)
    assert version == 5
    np.testing.assert_array_equal(np.asarray(params["w"]), np.arange(64 * 3, dtype=np.float32).reshape(64, 3))
