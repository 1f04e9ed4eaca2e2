"""ArrayRecord shard writing: records go to `<prefix>-NNNNN.arrayrecord` files of at most N records each; and
the check that a shard can be read whole."""

import os

from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter

from cwm_common.errors import CwmError


class ShardWriter:
    def __init__(self, directory: str, prefix: str, records_per_shard: int = 10_000):
        os.makedirs(directory, exist_ok=True)
        self.directory, self.prefix, self.records_per_shard = directory, prefix, records_per_shard
        self.paths: list[str] = []
        self._writer: ArrayRecordWriter | None = None
        self._in_shard = 0
        self.count = 0

    def write(self, record: bytes):
        if self._writer is None or self._in_shard >= self.records_per_shard:
            self._close_shard()
            path = os.path.join(self.directory, f"{self.prefix}-{len(self.paths):05d}.arrayrecord")
            # group_size:1 keeps every record individually addressable for Grain's global shuffle.
            self._writer = ArrayRecordWriter(path, "group_size:1")
            self.paths.append(path)
        self._writer.write(record)
        self._in_shard += 1
        self.count += 1

    def _close_shard(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._in_shard = 0

    def close(self) -> list[str]:
        self._close_shard()
        return self.paths

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_shard(path: str) -> None:
    """Refuses a truncated or corrupt shard (its footer unreadable) by name: ArrayRecord's own RuntimeError
    carries no path and often no message."""
    detail = ""
    try:
        reader = ArrayRecordReader(path)
        readable = reader.ok()
        reader.close()  # raises too when the file did not open cleanly
    except RuntimeError as e:
        readable, detail = False, f": {e}" if str(e) else ""
    if not readable:
        raise CwmError(f"{path}: unreadable ArrayRecord shard (truncated or corrupt{detail})")
