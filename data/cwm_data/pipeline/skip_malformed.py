"""Counts and drops malformed records (or fails the run), with the counts kept in the iterator's state."""

import logging
import re

import grain

from cwm_common.errors import CwmError

_DETAILS = re.compile(r"\s*\(.*\)\s*$")
MALFORMED = "malformed"  # documents that failed to parse are {"malformed": reason, "source": name}


class _SkipMalformedIterator(grain.DatasetIterator):
    def __init__(self, parent, fail: bool):
        super().__init__(parent)
        self._fail = fail
        self.counts: dict[str, int] = {}  # "source: reason" -> records dropped

    def __next__(self):
        while True:
            element = next(self._parent)
            if MALFORMED not in element:
                return element
            reason = f"{element['source']}: {element[MALFORMED]}"
            if self._fail:
                raise CwmError(f"malformed record in {reason}")
            # Counted by kind of problem: details in parentheses (offsets, parser messages) are dropped.
            key = _DETAILS.sub("", reason)
            if key not in self.counts:
                logging.warning("skipping malformed record(s) in %s", reason)
            self.counts[key] = self.counts.get(key, 0) + 1

    def get_state(self):
        return {"parent": self._parent.get_state(), "malformed": dict(self.counts)}

    def set_state(self, state):
        self._parent.set_state(state["parent"])
        self.counts = dict(state["malformed"])


class SkipMalformedIterDataset(grain.IterDataset):
    def __init__(self, parent: grain.IterDataset, fail: bool):
        super().__init__(parent)
        self._fail = fail

    def __iter__(self):
        return _SkipMalformedIterator(self._parent.__iter__(), self._fail)
