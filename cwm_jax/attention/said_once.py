"""One line to stderr per distinct message: traced code runs many times, a choice is worth saying once."""

import sys

_SAID: set[str] = set()


def say_once(message: str) -> None:
    if message not in _SAID:
        _SAID.add(message)
        print(message, file=sys.stderr)
