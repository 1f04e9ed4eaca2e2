"""Runs trace jobs on sandboxed trace servers in parallel and writes the kept traces to ArrayRecord shards.

Every job ends as kept or dropped with a reason (incomplete status, duplicate trace), counted in a report
that is printed, returned and saved as `report.json` beside the shards.
"""

import dataclasses
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable

from cwm_data.sandboxed_tracer import TracerPool
from cwm_data.shards import ShardWriter
from cwm_data.trace_frames import EXCEPTION_EXIT, TraceLimits, TraceResult


@dataclasses.dataclass(frozen=True)
class TraceJob:
    origin: str  # file the source came from
    source: str
    entry: str | None  # None: run the source as a program
    call_args: str = ""
    stdin: str | None = None


@dataclasses.dataclass
class GenerationReport:
    jobs: int = 0
    kept: int = 0
    kept_exceptions: int = 0  # kept traces that end in an exception (still valid execution)
    dropped: Counter = dataclasses.field(default_factory=Counter)  # reason -> count (a status or "duplicate")
    seconds: float = 0.0
    shards: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        dropped = ", ".join(f"{k} {v}" for k, v in sorted(self.dropped.items())) or "none"
        rate = self.jobs / self.seconds if self.seconds else 0.0
        return (
            f"{self.jobs} jobs: kept {self.kept} ({self.kept_exceptions} ending in an exception), "
            f"dropped {sum(self.dropped.values())} ({dropped}); {self.seconds:.1f}s, {rate:.1f} traces/s"
        )


def trace_record(job: TraceJob, result: TraceResult) -> dict:
    record = {
        "source": result.source,
        "status": result.status,
        "frames": [f.to_json() for f in result.frames],
        "origin": job.origin,
        "entry": job.entry,
        "call_args": job.call_args,
    }
    if job.stdin is not None:
        record.update(stdin=job.stdin, stdout=result.stdout)
    return record


def run_jobs(
    jobs: Iterable[TraceJob],
    out_dir: str,
    prefix: str,
    limits: TraceLimits,
    workers: int,
    log: Callable[[str], None] = print,
    progress_every_s: float = 5.0,
    backend: str = "bwrap",
) -> GenerationReport:
    """Traces every job (in `workers` sandboxes of the backend) and writes the kept traces to shards."""
    jobs = list(jobs)
    report = GenerationReport(jobs=len(jobs))
    seen: set[tuple[str, str | None, str]] = set()  # (origin, entry, frames fingerprint)
    start = last = time.perf_counter()

    calls = [(job.source, job.entry, job.call_args, job.stdin) for job in jobs]
    with TracerPool(max(1, workers), backend) as tracers, ShardWriter(out_dir, prefix) as shards:
        # trace_all keeps job order, so the shards are the same whatever the timing.
        for done, (job, result) in enumerate(zip(jobs, tracers.trace_all(calls, limits), strict=True), 1):
            if not result.complete:
                report.dropped[result.status] += 1
            else:
                fingerprint = hashlib.sha1(json.dumps(trace_record(job, result)["frames"]).encode()).hexdigest()
                if (job.origin, job.entry, fingerprint) in seen:
                    report.dropped["duplicate"] += 1
                else:
                    seen.add((job.origin, job.entry, fingerprint))
                    shards.write(json.dumps(trace_record(job, result)).encode())
                    report.kept += 1
                    report.kept_exceptions += result.status == EXCEPTION_EXIT
            now = time.perf_counter()
            if now - last >= progress_every_s or done == len(jobs):
                last = now
                log(
                    f"traced {done}/{len(jobs)}: kept {report.kept}, dropped {sum(report.dropped.values())}, "
                    f"{done / (now - start):.1f} traces/s"
                )
        report.shards = shards.close()
    report.seconds = time.perf_counter() - start
    with open(os.path.join(out_dir, f"{prefix}-report.json"), "w") as f:
        json.dump({**dataclasses.asdict(report), "dropped": dict(report.dropped)}, f, indent=1)
    log(report.summary())
    return report
