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
