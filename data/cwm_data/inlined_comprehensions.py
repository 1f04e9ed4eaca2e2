"""Python 3.12 runs list, dict and set comprehensions inside their function's frame (PEP 709); 3.11 gave
each a frame of its own, which traces leave out. So that a program's trace is the same on both, the tracer
drops line events raised inside an inlined comprehension's loop (one per iteration, showing its iteration
variables as the function's locals): `inside_comprehension(code, offset)`."""

import dis
import functools
import sys

INLINED = sys.version_info >= (3, 12)


@functools.lru_cache(maxsize=4096)
def comprehension_loops(code) -> tuple[tuple[int, int], ...]:
    """(first, last) bytecode offsets of each inlined comprehension's loop in `code`: from its FOR_ITER to the
    instruction restoring the last variable it saved (LOAD_FAST_AND_CLEAR ... END_FOR ... STORE_FAST)."""
    if not INLINED:
        return ()
    loops: list[tuple[int, int]] = []
    open_: list[dict] = []  # innermost last: saved names, loop start, whether its loop has ended
    previous = None
    for instruction in dis.get_instructions(code):
        name = instruction.opname
        if name == "LOAD_FAST_AND_CLEAR":
            if previous != "LOAD_FAST_AND_CLEAR":
                open_.append({"saved": set(), "start": None, "ended": False})
            open_[-1]["saved"].add(instruction.argval)
        elif open_:
            top = open_[-1]
            if name == "FOR_ITER" and top["start"] is None:
                top["start"] = instruction.offset
            elif name == "END_FOR":
                top["ended"] = True
            elif name == "STORE_FAST" and top["ended"]:
                top["saved"].discard(instruction.argval)
                if not top["saved"]:
                    open_.pop()
                    loops.append((top["start"], instruction.offset))
        previous = name
    return tuple(loops)


def inside_comprehension(code, offset: int) -> bool:
    return any(first <= offset <= last for first, last in comprehension_loops(code))
