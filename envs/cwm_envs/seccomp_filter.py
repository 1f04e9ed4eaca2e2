"""The seccomp program bwrap sandboxes run under: no new namespaces, no mounts.

An unprivileged process may create a user namespace and become root there (`unshare -Urm`), which opens
mounts and kernel code paths a sandbox has no use for. The filter refuses unshare, setns, the mount family,
and clone with any CLONE_NEW* flag (EPERM); clone3 answers ENOSYS, whose flags live in memory a filter
cannot read, so libc falls back to clone (as Docker's default profile does). Syscalls of another ABI
(i386 or x32 entry points on x86-64) are refused, so the numbers below cannot be sidestepped.
"""

import errno
import os
import platform
import struct

from cwm_common.errors import CwmError

_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _ERRNO = 0x7FFF0000, 0x00050000
_ARCH_OFFSET, _NR_OFFSET, _ARG0_OFFSET = 4, 0, 16  # struct seccomp_data (arg0's low word, little-endian)
_CLONE_NEW_FLAGS = 0x7E020000  # NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_X32_BIT = 0x40000000
_MOUNT_API = {"open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433}
# audit arch, then the syscall numbers the filter refuses, clone and clone3
_ABIS = {
    "x86_64": (
        0xC000003E,
        dict(unshare=272, setns=308, mount=165, umount2=166, pivot_root=155, mount_setattr=442, **_MOUNT_API),
        56,
        435,
    ),
    "aarch64": (
        0xC00000B7,
        dict(unshare=97, setns=268, mount=40, umount2=39, pivot_root=41, mount_setattr=442, **_MOUNT_API),
        220,
        435,
    ),
}


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def program(machine: str | None = None) -> bytes:
    """The BPF program for this machine's ABI, as bwrap's --seccomp reads it."""
    machine = machine or platform.machine()
    if machine not in _ABIS:
        raise CwmError(f"the bwrap sandbox has no seccomp filter for {machine}: it supports {', '.join(_ABIS)}")
    arch, refused, clone, clone3 = _ABIS[machine]
    eperm, enosys = _insn(_RET, _ERRNO | errno.EPERM), _insn(_RET, _ERRNO | errno.ENOSYS)
    insns = [_insn(_LD_W_ABS, _ARCH_OFFSET), _insn(_JEQ, arch, 1, 0), eperm, _insn(_LD_W_ABS, _NR_OFFSET)]
    if machine == "x86_64":
        insns += [_insn(_JGE, _X32_BIT, 0, 1), eperm]
    for number in refused.values():
        insns += [_insn(_JEQ, number, 0, 1), eperm]
    insns += [_insn(_JEQ, clone3, 0, 1), enosys]
    insns += [
        _insn(_JEQ, clone, 0, 3),
        _insn(_LD_W_ABS, _ARG0_OFFSET),
        _insn(_JSET, _CLONE_NEW_FLAGS, 0, 1),
        eperm,
        _insn(_RET, _ALLOW),
    ]
    return b"".join(insns)


def program_fd() -> int:
    """A fresh descriptor holding the program, positioned at its start (bwrap reads it to the end)."""
    fd = os.memfd_create("cwm-seccomp")
    os.write(fd, program())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
