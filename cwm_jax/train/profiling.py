"""An XLA profile of chosen training steps (`profile_start_step`, `profile_steps`): a trace per process in
WORKDIR/profile/ that TensorBoard's profile plugin, XProf or Perfetto (the .trace.json.gz) open. The
first steps compile, so start after them."""

import os

import jax


class StepProfiler:
    def __init__(self, workdir: str, start_step: int, steps: int, log):
        self.first, self.last = start_step, start_step + steps - 1
        self.directory = os.path.join(workdir, "profile", f"process_{jax.process_index()}")
        self.log = log
        self.active = False

    def before(self, step: int):
        if self.first and step == self.first:
            jax.profiler.start_trace(self.directory)
            self.active = True

    def after(self, step: int, state):
        if self.active and step == self.last:
            self.stop(state)
            self.log(f"profiled steps {self.first}-{self.last}: {self.directory}")

    def stop(self, state):
        """Ends a running trace once the device work it covers is done (also when the run ends early)."""
        if self.active:
            jax.block_until_ready(state)
            jax.profiler.stop_trace()
            self.active = False
