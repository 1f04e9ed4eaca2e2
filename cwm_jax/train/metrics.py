"""Per-step metrics to the console (progress line), `metrics.jsonl` and TensorBoard event files."""

import json
import os
import sys
import time

from tensorboardX import SummaryWriter

TRAIN_CONSOLE = (
    ("loss", "loss {:.4f}"),
    ("grad_norm", "grad_norm {:.3f}"),
    ("lr", "lr {:.2e}"),
    ("tokens_per_s", "{:,.0f} tok/s"),
    ("mfu", "mfu {:.1%}"),
)


class MetricsLogger:
    """Writes on process 0 only. `resume_step` drops JSONL lines from steps that will be run again.
    `console` lists (metric, format) pairs shown on the progress line when present."""

    def __init__(
        self,
        workdir: str,
        total_steps: int,
        resume_step: int,
        log_every: int,
        enabled: bool,
        console: tuple = TRAIN_CONSOLE,
    ):
        self.total, self.log_every, self.enabled, self.console = total_steps, log_every, enabled, console
        self.path = os.path.join(workdir, "metrics.jsonl")
        self.start_step, self.start_time = resume_step, time.perf_counter()
        if not enabled:
            return
        _truncate_after(self.path, resume_step)
        self.jsonl = open(self.path, "a")
        self.tensorboard = SummaryWriter(os.path.join(workdir, "tensorboard"))

    def log(self, step: int, metrics: dict):
        if not self.enabled:
            return
        self.jsonl.write(json.dumps({"step": step, **metrics}) + "\n")
        self.jsonl.flush()
        for name, value in metrics.items():
            if isinstance(value, (int, float)):
                self.tensorboard.add_scalar(f"train/{name}", value, step)
        if step % self.log_every == 0 or step == self.total:
            done = step - self.start_step
            elapsed = time.perf_counter() - self.start_time
            eta = elapsed / max(done, 1) * (self.total - step)
            width = 24
            bar = "#" * int(width * step / self.total)
            shown = "  ".join(fmt.format(metrics[key]) for key, fmt in self.console if metrics.get(key) is not None)
            print(f"[{bar:<{width}}] step {step}/{self.total}  {shown}  eta {eta:.0f}s", file=sys.stdout, flush=True)

    def close(self):
        if self.enabled:
            self.jsonl.close()
            self.tensorboard.close()


def _truncate_after(path: str, step: int):
    """A run killed after its last checkpoint logged steps it will now redo: forget those lines."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
    with open(path, "w") as f:
        f.writelines(lines)
