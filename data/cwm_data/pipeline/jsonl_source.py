"""A random-access Grain source over JSON Lines files: record i is the i-th non-empty line."""

import os

from cwm_common.errors import CwmError


class JsonlSource:
    def __init__(self, paths: list[str]):
        self.paths = list(paths)
        self._index: list[tuple[int, int, int]] = []  # (file number, byte offset, length)
        for number, path in enumerate(self.paths):
            if not os.path.exists(path):
                raise CwmError(f"{path}: data file not found")
            offset = 0
            with open(path, "rb") as f:
                for line in f:
                    if line.strip():
                        self._index.append((number, offset, len(line)))
                    offset += len(line)
        self._fds: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> bytes:
        number, offset, length = self._index[i]
        fd = self._fds.get(number)
        if fd is None:
            fd = self._fds[number] = os.open(self.paths[number], os.O_RDONLY)
        return os.pread(fd, length, offset)  # positioned read: safe from Grain's reader threads

    def __getstate__(self):
        # Open descriptors stay behind when the source is sent to a worker process.
        return {**self.__dict__, "_fds": {}}

    def __repr__(self) -> str:
        return f"JsonlSource({len(self.paths)} files, {len(self)} records)"
