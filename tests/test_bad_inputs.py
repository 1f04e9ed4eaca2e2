"""Bad inputs through the real CLI: one stderr line naming the flag, file or value at fault, exit status 2,
and nothing lost (checkpoints, counts, partial saves)."""

import errno
import json
import os
import pathlib
import shutil
import subprocess

import grain
import orbax.checkpoint as ocp
import pytest
from flax import nnx

import cwm_jax
from cwm_cli.main import main
from cwm_common.errors import CwmError
from cwm_data.shards import ShardWriter
from cwm_data.tokenizer import train_sentencepiece
from cwm_jax.model_checkpoint import save_model

ROOT = pathlib.Path(__file__).resolve().parents[1]
SWE_TASK = ROOT / "data" / "swe_tasks" / "calc-divide-by-zero"
MALFORMED = "text: text record field 'text' is not a string"
# A pipeline run small enough to train in seconds: tiny model, 8 x 32 tokens per step (8 rows: one per test
# device), a checkpoint per step.
PIPELINE_CONFIG = """
from configs.tiny import get_config as tiny


def get_config():
    c = tiny()
    c.data.kind = "pipeline"
    c.data.tokenizer = {tokenizer!r}
    c.data.sources = [dict(name="text", kind="text", paths=[{data!r}])]
    c.data.seq_len = 32
    c.batch_size = 8
    c.steps = 2
    c.checkpoint_every = 1
    c.log_every = 100
    return c
"""


def _error_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"cwm {argv[0]}: error: "), err
    return err


def _write_config(path: pathlib.Path, tokenizer: str, data: str) -> str:
    path.write_text(PIPELINE_CONFIG.format(tokenizer=tokenizer, data=data))
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """What the table's command lines name: models, good and bad files, a folder, a truncated shard."""
    d = tmp_path_factory.mktemp("inputs")
    model = cwm_jax.CwmModel(cwm_jax.from_preset("cwm-tiny"), nnx.Rngs(0))
    cwm_jax.to_hf(model, str(d / "hf"))
    save_model(model, str(d / "cwm"))
    (d / "ok.py").write_text("def f():\n    return 1\n")
    (d / "tests.py").write_text("def check(candidate):\n    assert candidate() == 1\n")
    (d / "latin1.py").write_bytes("def f():\n    return 'caf\xe9'\n".encode("latin-1"))
    (d / "a_file").write_text("not a folder\n")
    (d / "a_folder").mkdir()
    with ShardWriter(str(d), "text") as shards:
        shards.write(json.dumps({"text": "hello"}).encode())
    [shard] = shards.paths
    os.truncate(shard, os.path.getsize(shard) // 2)
    tasks = _bad_swe_tasks(d / "tasks")
    tokenizer = str(d / "sp.model")
    train_sentencepiece([f"doc {i} says hello world" for i in range(60)], 300, tokenizer)
    return {
        "hf": str(d / "hf"),
        "cwm": str(d / "cwm"),
        "ok": str(d / "ok.py"),
        "tests": str(d / "tests.py"),
        "latin1": str(d / "latin1.py"),
        "file": str(d / "a_file"),
        "dir": str(d / "a_folder"),
        "shard": shard,
        "shard_config": _write_config(d / "shard_config.py", tokenizer, shard),
        "tokenizer": tokenizer,
        "new": str(d / "never_written"),
        **tasks,
    }


def _bad_swe_tasks(root: pathlib.Path) -> dict[str, str]:
    """Copies of a shipped SWE task, each broken in one way: task.json's shape, or a repository file that is
    not a regular file."""
    meta = json.loads((SWE_TASK / "task.json").read_text())
    broken = {
        "task_not_object": "[]",
        "task_missing_key": json.dumps({k: v for k, v in meta.items() if k != "gold_patch"}),
        "task_string_f2p": json.dumps({**meta, "FAIL_TO_PASS": "test_calc.py::test_divide_by_zero"}),
        "task_empty_tests": json.dumps({**meta, "FAIL_TO_PASS": [], "PASS_TO_PASS": []}),
        "task_outside_test": json.dumps({**meta, "FAIL_TO_PASS": ["../../etc/test_x.py::t"]}),
        "task_symlink": json.dumps(meta),
    }
    folders = {}
    for name, text in broken.items():
        shutil.copytree(SWE_TASK, root / name)
        (root / name / "task.json").write_text(text)
        folders[name] = str(root / name)
    os.symlink("/etc/shadow", root / "task_symlink" / "repo" / "shadow")
    return folders


ALLOWED_DTYPES = "allowed: float32, bfloat16, float16"
CASES = [
    # 2, 3: convert
    pytest.param(
        ["convert", "cwm-to-hf", "{cwm}", "{new}", "--dtype", "int8"],
        ["'int8'", ALLOWED_DTYPES],
        id="convert-to-hf-int8",
    ),
    pytest.param(
        ["convert", "hf-to-cwm", "{hf}", "{new}", "--dtype", "int8"],
        ["'int8'", ALLOWED_DTYPES],
        id="convert-from-hf-int8",
    ),
    pytest.param(
        ["convert", "hf-to-cwm", "{hf}", "{file}"],
        ["{file}: exists and is not a directory"],
        id="convert-from-hf-onto-file",
    ),
    pytest.param(
        ["convert", "cwm-to-hf", "{cwm}", "{file}"],
        ["{file}: exists and is not a directory"],
        id="convert-to-hf-onto-file",
    ),
    # 4: plan
    pytest.param(["plan", "--devices", "0"], ["--devices must be a positive number (got 0)"], id="plan-devices-0"),
    pytest.param(["plan", "--batch", "-8"], ["--batch must be a positive number (got -8)"], id="plan-batch-negative"),
    # 5: generate
    pytest.param(
        ["generate", "--model", "{hf}", "--prompt", "hi", "--max-new-tokens", "-5"],
        ["--max-new-tokens", "(got -5)"],
        id="generate-max-new-tokens",
    ),
    pytest.param(
        ["generate", "--model", "{hf}", "--prompt", "hi", "--temperature", "-1"],
        ["--temperature", ">= 0 (got -1)"],
        id="generate-temperature",
    ),
    # 6: eval
    pytest.param(
        ["eval", "math", "--model", "{hf}", "--limit", "-1"],
        ["--limit must be a positive number (got -1)"],
        id="eval-limit",
    ),
    pytest.param(
        ["eval", "math", "--model", "{hf}", "--samples", "0"],
        ["--samples must be a positive number (got 0)"],
        id="eval-samples",
    ),
    # 7: reward
    pytest.param(
        ["reward", "code", "--solution", "{ok}", "--tests", "{tests}", "--timeout", "0"],
        ["--timeout", "(got 0)"],
        id="reward-code-timeout-0",
    ),
    pytest.param(
        ["reward", "code", "--solution", "{latin1}", "--tests", "{tests}"],
        ["{latin1}: --solution file is not UTF-8"],
        id="reward-code-solution-not-utf8",
    ),
    pytest.param(
        ["reward", "code", "--solution", "{ok}", "--tests", "{latin1}"],
        ["{latin1}: --tests file is not UTF-8"],
        id="reward-code-tests-not-utf8",
    ),
    pytest.param(
        ["reward", "swe", "--task", str(SWE_TASK), "--patch", "{dir}"],
        ["{dir}: cannot read --patch file"],
        id="reward-swe-patch-is-a-folder",
    ),
    # task folders: task.json's shape, and repository files that are not regular files
    pytest.param(
        ["reward", "swe", "--task", "{task_not_object}", "--patch", "{ok}"],
        ["{task_not_object}/task.json: must be a JSON object, not list"],
        id="swe-task-not-an-object",
    ),
    pytest.param(
        ["reward", "swe", "--task", "{task_missing_key}", "--patch", "{ok}"],
        ["{task_missing_key}/task.json: missing 'gold_patch'"],
        id="swe-task-missing-key",
    ),
    pytest.param(
        ["reward", "swe", "--task", "{task_string_f2p}", "--patch", "{ok}"],
        ["{task_string_f2p}/task.json: 'FAIL_TO_PASS' must be a list, not str"],
        id="swe-task-string-fail-to-pass",
    ),
    pytest.param(
        ["reward", "swe", "--task", "{task_empty_tests}", "--patch", "{ok}"],
        ["{task_empty_tests}/task.json: 'FAIL_TO_PASS' is empty"],
        id="swe-task-no-tests",
    ),
    pytest.param(
        ["reward", "swe", "--task", "{task_outside_test}", "--patch", "{ok}"],
        ["'FAIL_TO_PASS' holds '../../etc/test_x.py::t', not a test id relative to the repository"],
        id="swe-task-test-outside-the-repository",
    ),
    pytest.param(
        ["reward", "swe", "--task", "{task_symlink}", "--patch", "{ok}"],
        ["{task_symlink}/repo/shadow: a symlink in a task repository"],
        id="swe-task-symlinked-file",
    ),
    # 8: sandbox limits, named by flag
    pytest.param(
        ["sandbox", "exec", "--timeout", "-1", "--", "true"], ["--timeout", "seconds (got -1)"], id="sandbox-timeout"
    ),
    pytest.param(
        ["sandbox", "exec", "--max-output", "-1", "--", "true"],
        ["--max-output", "bytes (got -1)"],
        id="sandbox-max-output",
    ),
    pytest.param(
        ["sandbox", "exec", "--memory-mb", "-5", "--", "true"],
        ["--memory-mb must be a positive number of MiB (got -5)"],
        id="sandbox-memory-negative",
    ),
    pytest.param(
        ["sandbox", "exec", "--memory-mb", "0", "--", "true"],
        ["--memory-mb must be a positive number of MiB (got 0)"],
        id="sandbox-memory-0",
    ),
    pytest.param(
        ["trace", "{ok}", "--entry", "f", "--memory-mb", "-5"], ["--memory-mb", "(got -5)"], id="trace-memory"
    ),
    pytest.param(
        ["gen-traces", "functions", "{ok}", "--out", "{new}", "--memory-mb", "0"],
        ["--memory-mb", "(got 0)"],
        id="gen-traces-memory",
    ),
    # 9: trace
    pytest.param(
        ["trace", "{latin1}", "--entry", "f"],
        ["{latin1}: source file is not UTF-8 text (byte 24 is 0xe9)"],
        id="trace-source-not-utf8",
    ),
    # 10: a workdir that is a file
    pytest.param(
        ["train", "--config", str(ROOT / "configs/tiny.py"), "--workdir", "{file}"],
        ["workdir {file}: exists"],
        id="train-workdir-is-a-file",
    ),
    pytest.param(
        ["sweep", "--config", str(ROOT / "configs/sweeps/toy.py"), "--workdir", "{file}"],
        ["workdir {file}: exists"],
        id="sweep-workdir-is-a-file",
    ),
    pytest.param(
        ["rl", "--config", str(ROOT / "configs/rl_tiny.py"), "--workdir", "{file}"],
        ["workdir {file}: exists"],
        id="rl-workdir-is-a-file",
    ),
    # 14: a truncated ArrayRecord shard
    pytest.param(
        ["train", "--config", "{shard_config}", "--workdir", "{new}"],
        ["{shard}: unreadable ArrayRecord shard"],
        id="train-truncated-shard",
    ),
]


@pytest.mark.parametrize("argv, expected", CASES)
def test_a_bad_input_is_named_in_one_line(files, capsys, argv, expected):
    err = _error_line(capsys, [arg.format(**files) for arg in argv])
    for text in expected:
        assert text.format(**files) in err, err
    assert not os.path.exists(files["new"])


def test_convert_reads_and_writes_relative_paths(files, tmp_path, monkeypatch, capsys):
    shutil.copytree(files["hf"], tmp_path / "hf")
    cwm_jax.to_hf(cwm_jax.load_model(files["hf"]), str(tmp_path / "sharded"), max_shard_bytes=2**20)
    monkeypatch.chdir(tmp_path)
    assert main(["convert", "hf-to-cwm", "hf", "cwm"]) == 0
    assert main(["convert", "hf-to-cwm", "sharded", "cwm_from_shards"]) == 0
    assert main(["convert", "cwm-to-hf", "cwm", "back"]) == 0
    assert (tmp_path / "back" / "model.safetensors").exists() and not capsys.readouterr().err


@pytest.fixture(scope="module")
def pipeline_run(files, tmp_path_factory) -> dict[str, pathlib.Path]:
    """Two steps (under one epoch) over a JSONL source whose one malformed line is the first record read."""
    d = tmp_path_factory.mktemp("run")
    lines = [json.dumps({"text": f"doc {i} says " + "hello world " * (5 + i % 5)}) for i in range(80)]
    first = grain.MapDataset.range(len(lines) + 1).shuffle(seed=0)[0]  # the tiny config's seed
    lines.insert(first, '{"text": 5}')
    (d / "text.jsonl").write_text("\n".join(lines) + "\n")
    config = _write_config(d / "config.py", files["tokenizer"], str(d / "text.jsonl"))
    assert main(["train", "--config", config, "--workdir", str(d / "workdir")]) == 0
    return {"config": pathlib.Path(config), "workdir": d / "workdir"}


def _copy_run(pipeline_run, tmp_path) -> tuple[list[str], pathlib.Path]:
    workdir = tmp_path / "workdir"
    shutil.copytree(pipeline_run["workdir"], workdir)
    return ["train", "--config", str(pipeline_run["config"]), "--workdir", str(workdir)], workdir / "checkpoints"


def test_skipped_malformed_records_are_counted_in_the_checkpoint(pipeline_run):
    for step in ("1", "2"):
        manifest = json.loads((pipeline_run["workdir"] / "checkpoints" / step / "manifest" / "metadata").read_text())
        assert manifest["malformed_records"] == {MALFORMED: 1}, step
        assert manifest["data_state"]["parent_state"]["malformed"] == {MALFORMED: 1}


@pytest.mark.parametrize("corrupt", ["state/_METADATA", "data/process_0-of-1.json"])
def test_resume_falls_back_from_an_unreadable_latest_checkpoint(pipeline_run, tmp_path, capsys, corrupt):
    argv, checkpoints = _copy_run(pipeline_run, tmp_path)
    (checkpoints / "2" / corrupt).write_text("{garbage")
    assert main(argv) == 0
    out, err = capsys.readouterr()
    [warning] = [line for line in out.splitlines() if line.startswith("warning:")]
    assert f"skipping checkpoint step 2: {checkpoints / '2' / corrupt}: unreadable" in warning
    assert "resumed from step 1" in out and "Traceback" not in err
    assert sorted(os.listdir(checkpoints)) == ["1", "2"]  # step 2 trained and saved again
    [aside] = os.listdir(checkpoints.parent / "unreadable_checkpoints")  # the unreadable one kept, not deleted
    assert (checkpoints.parent / "unreadable_checkpoints" / aside / corrupt).read_text() == "{garbage"


def test_no_intact_checkpoint_is_named_in_one_line(pipeline_run, tmp_path, capsys):
    argv, checkpoints = _copy_run(pipeline_run, tmp_path)
    for step in ("1", "2"):
        (checkpoints / step / "state" / "_METADATA").write_text("{garbage")
    err = _error_line(capsys, argv)
    assert f"{checkpoints / '2' / 'state' / '_METADATA'}: unreadable" in err and "no intact checkpoint" in err


def test_inference_loads_the_newest_intact_checkpoint_of_a_workdir(pipeline_run, files, tmp_path, capsys):
    argv, checkpoints = _copy_run(pipeline_run, tmp_path)
    (checkpoints / "2" / "state" / "_METADATA").write_text("{garbage")
    tokenizer = ["--tokenizer", files["tokenizer"]]
    assert main(["generate", "--model", argv[-1], *tokenizer, "--prompt", "doc", "--max-new-tokens", "2"]) == 0
    err = capsys.readouterr().err
    assert "warning: skipping checkpoint step 2" in err and "loading step 1" in err
    assert sorted(os.listdir(checkpoints)) == ["1", "2"]  # inference leaves the workdir as it was


def test_a_save_that_runs_out_of_disk_leaves_nothing_behind(pipeline_run, tmp_path, capsys, monkeypatch):
    argv, checkpoints = _copy_run(pipeline_run, tmp_path)

    async def disk_full(*args, **kwargs):  # fails where a write would: in Orbax's background save
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr(ocp.StandardCheckpointHandler, "async_save", disk_full)
        err = _error_line(capsys, [*argv, "--config.steps=3"])
    assert f"{checkpoints}: no space left on device for step 3: its arrays take 26.2 MiB" in err
    assert sorted(os.listdir(checkpoints)) == ["1", "2"]  # no .orbax-checkpoint-tmp folder left
    assert main([*argv, "--config.steps=3"]) == 0
    assert sorted(os.listdir(checkpoints)) == ["1", "2", "3"]


@pytest.mark.skipif(os.getuid() != 0, reason="mounting a small disk needs root")
def test_a_save_the_disk_cannot_hold_is_refused_before_it_starts(pipeline_run, tmp_path, capsys):
    """On a real 12 MiB disk: one line (a save failing midway would print a traceback per write in flight)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(disk)], check=True)
    try:
        argv = ["train", "--config", str(pipeline_run["config"]), "--workdir", str(disk / "run")]
        err = _error_line(capsys, argv)
        assert f"{disk / 'run' / 'checkpoints'}: no space left on device for step 1: its arrays take 26.2 MiB" in err
        assert os.listdir(disk / "run" / "checkpoints") == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.bwrap
def test_a_binary_file_in_a_task_repository_is_carried_not_refused(tmp_path, capsys):
    task = tmp_path / "task"
    shutil.copytree(SWE_TASK, task)
    (task / "repo" / "blob.bin").write_bytes(bytes(range(256)))
    gold = tmp_path / "gold.diff"
    gold.write_text(json.loads((SWE_TASK / "task.json").read_text())["gold_patch"])
    assert main(["reward", "swe", "--task", str(task), "--patch", str(gold)]) == 0
    assert json.loads(capsys.readouterr().out)["resolved"]
    from cwm_envs.sandbox_factory import make_sandbox
    from cwm_tasks.swe import SweTask

    sandbox = make_sandbox("bwrap")
    try:
        SweTask.load(str(task)).setup(sandbox)
        assert sandbox.get_file("repo/blob.bin") == bytes(range(256))
    finally:
        sandbox.close()


@pytest.mark.parametrize(
    "options", [{"max_new_tokens": -5}, {"temperature": -1.0}, {"top_p": 0.0}, {"top_p": 1.5}, {"top_k": -1}]
)
def test_generate_refuses_meaningless_sampling_values(files, options):
    model = cwm_jax.load_model(files["hf"])
    with pytest.raises(CwmError, match=r"generate: max_new_tokens >= 0, temperature >= 0, 0 < top_p <= 1"):
        cwm_jax.generate(model, [[1, 2]], **{"max_new_tokens": 4, **options})
