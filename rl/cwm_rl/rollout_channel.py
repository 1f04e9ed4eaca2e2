"""Rollout batches from actor processes to the learner through a directory (one host, or hosts sharing a
filesystem): `batch-B.json` written atomically (temp file + rename), deleted by the learner once read."""

import dataclasses
import json
import os
import tempfile

from cwm_rl.samples import Sample


class DirectoryRollouts:
    def __init__(self, directory: str):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    def _path(self, batch_index: int) -> str:
        return os.path.join(self.directory, f"batch-{batch_index}.json")

    def put(self, batch_index: int, samples: list[Sample], gen: dict):
        fd, temp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"samples": [dataclasses.asdict(s) for s in samples], "gen": gen}, f)
        os.replace(temp, self._path(batch_index))

    def pop(self, batch_index: int):
        """(samples, gen) of batch B, removed from the directory; None while it is not there."""
        try:
            with open(self._path(batch_index)) as f:
                record = json.load(f)
        except FileNotFoundError:
            return None
        os.remove(self._path(batch_index))
        return [Sample(**s) for s in record["samples"]], record["gen"]
