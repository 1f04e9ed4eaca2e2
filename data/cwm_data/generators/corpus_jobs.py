"""Trace jobs from the shipped corpus layout: function modules with EXAMPLES, and stdin/stdout programs."""

import ast
import json
import os
import zlib

from cwm_common.errors import CwmError
from cwm_data.fuzz import example_from_annotation, fuzz_calls, parse_args
from cwm_data.generators.trace_jobs import TraceJob


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        raise CwmError(f"{path}: cannot read ({e.strerror})") from None


def _examples_table(tree: ast.Module, path: str) -> dict[str, list[str]]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "EXAMPLES" for t in node.targets):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                raise CwmError(f"{path}: EXAMPLES must be a literal dict of name -> [argument source, ...]") from None
    return {}


def function_jobs(paths: list[str], per_function: int, seed: int = 0) -> tuple[list[TraceJob], list[str]]:
    """Jobs for every public top-level function; and the functions skipped for having no inputs."""
    jobs, skipped = [], []
    for path in paths:
        source = _read(path)
        try:
            tree = ast.parse(source)
        except SyntaxError as e:
            raise CwmError(f"{path}:{e.lineno}: {e.msg}") from None
        table = _examples_table(tree, path)
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
                continue
            try:
                examples = [parse_args(s) for s in table.get(node.name, [])]
            except (ValueError, SyntaxError):
                raise CwmError(f"{path}: EXAMPLES[{node.name!r}] has an argument list that is not literals") from None
            if not examples:
                guessed = [example_from_annotation(a.annotation) for a in node.args.args]
                if guessed and all(g is not None for g in guessed):
                    examples = [tuple(guessed)]
            if not examples:
                skipped.append(f"{path}:{node.name}")
                continue
            for call in fuzz_calls(examples, per_function, seed + zlib.crc32(node.name.encode())):
                jobs.append(TraceJob(path, source, node.name, call))
    return jobs, skipped


def program_jobs(paths: list[str]) -> list[TraceJob]:
    """One job per (program, input) with inputs from `<program>.inputs.json` beside each program."""
    jobs = []
    for path in paths:
        inputs_path = os.path.splitext(path)[0] + ".inputs.json"
        try:
            inputs = json.loads(_read(inputs_path))
        except json.JSONDecodeError as e:
            raise CwmError(f"{inputs_path}: not valid JSON ({e.msg})") from None
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            raise CwmError(f"{inputs_path}: expected a JSON list of stdin strings")
        source = _read(path)
        jobs += [TraceJob(path, source, None, stdin=text) for text in inputs]
    return jobs
