"""Trace generators: corpus -> shards with a report; hostile code is stopped and counted, the run goes on."""

import importlib
import json
import pathlib
import sys

import pytest
from array_record.python.array_record_data_source import ArrayRecordDataSource

from cwm_data import trace_format
from cwm_data.fuzz import fuzz_calls, parse_args
from cwm_data.generators.corpus_jobs import function_jobs, program_jobs
from cwm_data.generators.repo_traces import generate_repo_traces
from cwm_data.generators.trace_jobs import run_jobs
from cwm_data.safe_repr import safe_repr
from cwm_data.trace_frames import CALL, Frame, TraceLimits
from cwm_data.tracer import START_MARKER

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORPUS = ROOT / "data" / "corpus"
HOSTILE = """
import os

def add(a: int, b: int) -> int:
    return a + b

def spin(n):
    while True:
        n += 1

def hog(n):
    blocks = []
    while True:
        blocks.append(bytearray(50_000_000))

def bomb(n):
    while True:
        os.fork()

EXAMPLES = {"add": ["1, 2"], "spin": ["0"], "hog": ["0"], "bomb": ["0"]}
"""


def _records(paths):
    return [json.loads(r) for r in ArrayRecordDataSource(paths)]


def test_hostile_functions_are_stopped_counted_and_the_run_goes_on(tmp_path):
    (tmp_path / "hostile.py").write_text(HOSTILE)
    jobs, skipped = function_jobs([str(tmp_path / "hostile.py")], per_function=2, seed=0)
    assert skipped == [] and {j.entry for j in jobs} == {"add", "bomb", "hog", "spin"}
    limits = TraceLimits(max_steps=2000, timeout_s=2.0, memory_mb=300)
    logs: list[str] = []
    report = run_jobs(jobs, str(tmp_path / "out"), "hostile", limits, workers=2, log=logs.append)
    records = _records(report.shards)
    assert {r["entry"] for r in records} == {"add", "bomb"}  # the fork bomb ends in an exception: refused
    assert all(r["frames"][-1]["event"] == "exception" for r in records if r["entry"] == "bomb")
    assert report.dropped["step_limit"] == 2 and report.dropped["memory_limit"] == 2
    assert report.kept + sum(report.dropped.values()) == report.jobs == len(jobs)
    saved = json.loads((tmp_path / "out" / "hostile-report.json").read_text())
    assert saved["kept"] == report.kept and saved["dropped"] == dict(report.dropped)
    assert "dropped 4" in logs[-1]


def test_shipped_corpus_generates_valid_traces(tmp_path):
    jobs, skipped = function_jobs(sorted(map(str, (CORPUS / "functions").glob("*.py"))), per_function=3)
    jobs += program_jobs(sorted(map(str, (CORPUS / "programs").glob("*.py"))))
    report = run_jobs(jobs, str(tmp_path), "corpus", TraceLimits(max_steps=20_000), workers=2, log=lambda m: None)
    assert skipped == [] and report.kept >= 0.9 * len(jobs)
    for record in _records(report.shards):
        frames = [Frame.from_json(f) for f in record["frames"]]
        assert trace_format.parse(trace_format.render(frames, True)) == (frames, True)
        assert frames[0].event == CALL and frames[0].line.rstrip("\n") + START_MARKER + "\n" in record["source"]
        if record.get("stdin") is not None:
            assert record["stdout"].strip()  # programs printed their answer


def test_fuzzing_keeps_the_example_shapes():
    examples = [parse_args("[3, 1, 2], 'ab'"), parse_args("[], ''")]
    calls = fuzz_calls(examples, 12, seed=1)
    assert calls[:2] == ["[3, 1, 2], 'ab'", "[], ''"] and len(set(calls)) == 12
    for call in calls:
        xs, s = parse_args(call)
        assert isinstance(xs, list) and all(isinstance(x, int) for x in xs) and isinstance(s, str)
    assert fuzz_calls(examples, 12, seed=1) == calls


@pytest.mark.bwrap
def test_repository_suite_is_cut_into_function_episodes(tmp_path, textkit_env):
    repo = CORPUS / "repos" / "textkit"
    report = generate_repo_traces(str(repo), textkit_env, str(tmp_path), TraceLimits(max_depth=0), log=lambda m: None)
    episodes = _records(report.shards)
    entries = {ep["frames"][0]["line"].split("(")[0].split()[-1] for ep in episodes}
    assert {
        "words",
        "ngrams",
        "capitalize_sentences",
        "build_vocabulary",
        "most_common",
        "bigram_counts",
        "type_token_ratio",
    } <= entries
    sys.path.insert(0, str(repo))
    try:
        stats = importlib.import_module("textkit.stats")  # the repo under test, importable from sys.path only
        tokens = importlib.import_module("textkit.tokens")
        functions = {**vars(tokens), **vars(stats)}
        for ep in episodes:
            frames = [Frame.from_json(f) for f in ep["frames"]]
            assert trace_format.validate(trace_format.render(frames, True)) is None
            assert frames[0].line.rstrip("\n") + START_MARKER in ep["source"] and START_MARKER not in frames[0].line
            # max_depth 0: only the entry's own frames, no nested call frames.
            assert [f.event for f in frames].count(CALL) == 1
            name = frames[0].line.split("(")[0].split()[-1]
            entry_locals = frames[0].locals
            assert entry_locals is not None  # a call frame carries its arguments
            if frames[-1].event == "return" and name in functions and "self" not in entry_locals:
                args = [eval(v, {}) for v in entry_locals.values()]
                assert safe_repr(functions[name](*args), 1000) == frames[-1].value
    finally:
        sys.path.remove(str(repo))
    deeper = generate_repo_traces(
        str(repo), textkit_env, str(tmp_path / "deep"), TraceLimits(max_depth=1), log=lambda m: None
    )
    vocab = [ep for ep in _records(deeper.shards) if "def build_vocabulary" in ep["frames"][0]["line"]]
    assert [f["event"] for f in vocab[0]["frames"]].count(CALL) > 1  # words() and add() stepped into


@pytest.mark.bwrap
def test_a_repository_suite_imports_its_dependencies_from_its_own_environment(tmp_path, textkit_env, batchkit_env):
    repo = str(ROOT / "tests" / "data" / "repos" / "batchkit")  # not in the corpus: its text would change it
    report = generate_repo_traces(repo, batchkit_env, str(tmp_path / "own"), TraceLimits(max_depth=0), log=print)
    saved = json.loads((tmp_path / "own" / "repo-batchkit-report.json").read_text())
    entries = {ep["frames"][0]["line"].split("(")[0].split()[-1] for ep in _records(report.shards)}
    assert saved["pytest_exit_code"] == 0 and {"batches", "moving_sums", "balanced"} <= entries
    # more-itertools is in neither the host's view nor an environment without it: the suite cannot import it.
    without = generate_repo_traces(repo, textkit_env, str(tmp_path / "bare"), TraceLimits(max_depth=0), log=print)
    saved = json.loads((tmp_path / "bare" / "repo-batchkit-report.json").read_text())
    assert saved["pytest_exit_code"] == 2 and without.kept == 0  # 2: collection failed (ImportError)
