import re
import subprocess
import sys

import numpy as np
from flax import nnx

import cwm_jax
from cwm_cli.main import main
from cwm_jax.hf.safetensors_dir import SafetensorsReader


def test_demo_trains_and_reports_throughput(capsys):
    assert main(["demo", "--steps", "8", "--batch", "2", "--seq-len", "32"]) == 0
    out = capsys.readouterr().out
    first, last = map(float, re.search(r"done: loss ([\d.]+) -> ([\d.]+)", out).groups())
    assert last < first - 0.3  # the fixed batch is being memorized
    assert re.search(r"step +8/8 +loss [\d.]+ +[\d,]+ tokens/s", out)
    assert "logits (2, 32, 1024)" in out


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
    result = subprocess.run([sys.executable, "-m", "cwm_cli.main", "convert", "hf-to-cwm", str(tmp_path / "none"),
                             str(tmp_path / "out")], capture_output=True, text=True)
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
    assert main(["gen-traces", "functions", str(corpus), "--out", str(tmp_path / "out"), "--per-function", "3",
                 "--workers", "2"]) == 0
    assert "3 jobs: kept 3" in capsys.readouterr().out
    assert (tmp_path / "out" / "functions-00000.arrayrecord").exists()
