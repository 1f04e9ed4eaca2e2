import json
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

import cwm_jax
from cwm_cli.main import main
from cwm_common.errors import CwmError
from cwm_data.tokenizer import train_sentencepiece
from cwm_jax.hf.safetensors_dir import SafetensorsReader
from cwm_tasks.stdio_programs import load_stdio_problems

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_convert_both_ways_is_lossless(tmp_path, capsys):
    source = tmp_path / "hf"
    cwm_jax.to_hf(cwm_jax.CwmModel(cwm_jax.from_preset("cwm-tiny"), nnx.Rngs(5)), str(source))
    assert main(["convert", "hf-to-cwm", str(source), str(tmp_path / "cwm")]) == 0
    assert main(["convert", "cwm-to-hf", str(tmp_path / "cwm"), str(tmp_path / "back")]) == 0
    before, after = SafetensorsReader(str(source)), SafetensorsReader(str(tmp_path / "back"))
    assert before.names() == after.names()
    for name in before.names():
        assert np.array_equal(before.get(name), after.get(name)), name
    assert "2,287,296 parameters" in capsys.readouterr().out


def test_user_errors_print_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cwm_cli.main", "convert", "hf-to-cwm", str(tmp_path / "none"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "config.json: not found" in result.stderr


def test_trace_command_prints_the_cwm_trace(tmp_path, capsys):
    source = tmp_path / "prog.py"
    source.write_text("def double(xs, k=2):\n    return [x * k for x in xs]\n")
    assert main(["trace", str(source), "--entry", "double", "--args", "[[1, 2]]", "--kwargs", '{"k": 3}']) == 0
    out = capsys.readouterr().out
    assert out.startswith("<|begin_of_text|><|trace_context_start|>def double(xs, k=2):  # << START_OF_TRACE\n")
    assert '<|call_sep|>{"xs": "[1, 2]", "k": "3"}<|action_sep|>' in out
    assert out.rstrip().endswith('<|arg_sep|>"[3, 6]"<|frame_sep|><|end_of_text|>')
    assert main(["trace", str(source), "--entry", "double", "--args", "[[1]]", "--format", "json"]) == 0
    assert '"status": "ok"' in capsys.readouterr().out


def test_trace_command_errors_and_incomplete_traces(tmp_path, capsys):
    source = tmp_path / "prog.py"
    source.write_text("def spin():\n    while True:\n        pass\n")
    assert main(["trace", str(source), "--entry", "spin", "--max-steps", "50"]) == 1
    assert "incomplete trace (step_limit)" in capsys.readouterr().err
    assert main(["trace", str(source), "--entry", "spin", "--args", "{"]) == 2
    assert "--args: not valid JSON" in capsys.readouterr().err
    assert main(["trace", str(tmp_path / "missing.py"), "--entry", "f"]) == 2
    assert "cannot read source file" in capsys.readouterr().err


def test_gen_traces_command_writes_shards_and_a_report(tmp_path, capsys):
    corpus = tmp_path / "funcs.py"
    corpus.write_text("def inc(x: int) -> int:\n    return x + 1\n")
    assert (
        main(
            [
                "gen-traces",
                "functions",
                str(corpus),
                "--out",
                str(tmp_path / "out"),
                "--per-function",
                "3",
                "--workers",
                "2",
            ]
        )
        == 0
    )
    assert "3 jobs: kept 3" in capsys.readouterr().out
    assert (tmp_path / "out" / "functions-00000.arrayrecord").exists()


@pytest.mark.bwrap
def test_sandbox_exec_passes_output_and_status_through():
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "cwm_cli.main", "sandbox", "exec", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    ok = run("--", "python3", "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(4)")
    assert (ok.returncode, ok.stdout, ok.stderr) == (4, "out\n", "err\n")
    slow = run("--timeout", "1", "--", "sleep", "10")
    assert slow.returncode == 124 and "timed out" in slow.stderr
    flood = run("--max-output", "1000", "--", "yes")
    assert flood.returncode == 125 and len(flood.stdout) == 1000


@pytest.mark.bwrap
def test_reward_code_prints_json(tmp_path, capsys):
    (tmp_path / "sol.py").write_text("def add(a, b):\n    return a - b\n")
    (tmp_path / "tests.py").write_text(
        "def check(candidate):\n    assert candidate(1, 1) == 0\n    assert candidate(2, 1) == 3\n"
    )
    assert main(["reward", "code", "--solution", str(tmp_path / "sol.py"), "--tests", str(tmp_path / "tests.py")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["reward"] == -1 and [t["passed"] for t in result["tests"]] == [True, False]
    assert main(["reward", "code", "--solution", str(tmp_path / "none.py"), "--tests", "x"]) == 2


@pytest.mark.bwrap
def test_reward_swe_reports_like_the_swe_bench_harness(tmp_path, capsys, monkeypatch):
    task = ROOT / "data" / "swe_tasks" / "calc-divide-by-zero"
    gold = json.loads((task / "task.json").read_text())["gold_patch"]
    (tmp_path / "gold.diff").write_text(gold)
    out = tmp_path / "artifacts"
    args = ["reward", "swe", "--task", str(task), "--patch", str(tmp_path / "gold.diff")]
    assert main([*args, "--artifacts", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["resolved"] and report["failure_class"] is None and report["instance_id"] == "calc-divide-by-zero"
    assert json.loads(capsys.readouterr().out) == report
    assert "passed" in (out / "test_output.txt").read_text() and (out / "patch.diff").read_text() == gold
    (tmp_path / "none.diff").write_text("")
    assert main(["reward", "swe", "--task", str(task), "--patch", str(tmp_path / "none.diff")]) == 0
    assert json.loads(capsys.readouterr().out)["failure_class"] == "unresolved"
    # A sandbox that cannot start is the infrastructure's failure, never an unresolved patch.
    import cwm_envs.sandbox_factory

    monkeypatch.setattr(
        cwm_envs.sandbox_factory, "make_sandbox", lambda *a, **k: (_ for _ in ()).throw(OSError("no daemon"))
    )
    assert main(args) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["failure_class"] == "infra_error" and not report["resolved"] and "no daemon" in report["log"]


def test_one_loader_reads_every_saved_format(tmp_path):
    model = cwm_jax.CwmModel(cwm_jax.from_preset("cwm-tiny"), nnx.Rngs(7))
    cwm_jax.to_hf(model, str(tmp_path / "hf"))
    assert main(["convert", "hf-to-cwm", str(tmp_path / "hf"), str(tmp_path / "cwm")]) == 0
    want = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    for saved in ("hf", "cwm"):
        got = nnx.to_pure_dict(nnx.state(cwm_jax.load_model(str(tmp_path / saved)), nnx.Param))
        for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
            assert np.array_equal(a, b), saved
    with pytest.raises(CwmError, match=f"{tmp_path}: not a model: no model_config.json"):
        cwm_jax.load_model(str(tmp_path))


@pytest.mark.bwrap
def test_eval_stdio_runs_a_model_from_the_command_line(tmp_path, capsys):
    model_dir = tmp_path / "model"
    cwm_jax.to_hf(cwm_jax.CwmModel(cwm_jax.from_preset("cwm-tiny"), nnx.Rngs(3)), str(model_dir))
    texts = [p.statement for p in load_stdio_problems()] * 4
    train_sentencepiece(texts, 768, str(model_dir / "tokenizer.model"))
    out = tmp_path / "result.json"
    assert (
        main(
            [
                "eval",
                "stdio",
                "--hf",
                str(model_dir),
                "--limit",
                "2",
                "--language",
                "cpp",
                "--max-new-tokens",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert [i["id"] for i in result["items"]] == ["p0001/cpp", "p0002/cpp"] and result["summary"] == {"pass@1": 0.0}
    assert "stdio (2 items, 1 samples)" in capsys.readouterr().out
