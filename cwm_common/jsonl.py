"""Reading a JSON-lines file whole, with errors that name the file and the line."""

import json

from cwm_common.errors import CwmError


def read_jsonl(path: str) -> list[dict]:
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise CwmError(f"{path}: cannot read ({e.strerror})") from None
    records = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise CwmError(f"{path}:{number}: not valid JSON ({e.msg})") from None
    return records
