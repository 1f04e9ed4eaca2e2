"""Unprivileged user ids for sandboxes, distinct across every process on the machine.

RLIMIT_NPROC counts processes per user id, so two sandboxes sharing a uid share one process budget (one's
fork bomb starves the other). A uid is held by an exclusive flock on its lock file for the sandbox's life; the
kernel drops the lock when the holder dies, so a crashed run never leaks its uids.
"""

import fcntl
import os
import random
import tempfile

from cwm_common.errors import CwmError

FIRST_UID, UID_COUNT = 200_000, 100_000
_LOCK_DIR = os.path.join(tempfile.gettempdir(), "cwm-sandbox-uids")


class SandboxUid:
    def __init__(self):
        os.makedirs(_LOCK_DIR, mode=0o700, exist_ok=True)
        start = random.randrange(UID_COUNT)  # spread processes over the range: few lock attempts each
        for i in range(UID_COUNT):
            uid = FIRST_UID + (start + i) % UID_COUNT
            fd = os.open(os.path.join(_LOCK_DIR, str(uid)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid, self._fd = uid, fd
            return
        raise CwmError(f"all {UID_COUNT} sandbox user ids are in use ({_LOCK_DIR})")

    def release(self):
        if self._fd >= 0:
            os.close(self._fd)  # closing drops the lock
            self._fd = -1
