"""Actors for the asynchronous loop: batch b (trained as policy version b) is generated with the newest
weights once their version is >= b - max_staleness; until then the actor waits, so no rollout is ever older
than the bound and nothing is generated only to be thrown away.

`ThreadActor`: one background thread in the learner's process, weights passed by reference (a copy).
`ProcessActors`: N `cwm rl-actor` processes on this host; weights go out and rollouts come back through
`WORKDIR/exchange/` (actor k makes batches b with b % N == k). Both: publish(version, params), take(b), stop().
"""

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time

from cwm_common.errors import CwmError
from cwm_rl.rollout_channel import DirectoryRollouts
from cwm_rl.weight_channels import DirectoryWeights, InProcessWeights


class ThreadActor:
    def __init__(self, collect, first_batch: int, max_staleness: int, version: int, params):
        self.collect, self.max_staleness = collect, max_staleness
        self.weights = InProcessWeights(version, params)
        self.queue: queue.Queue = queue.Queue()  # holds at most max_staleness + 1 batches: the actor waits
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(first_batch,), daemon=True)
        self.thread.start()

    def _run(self, batch_index: int):
        try:
            while True:
                latest = self.weights.wait_for(batch_index - self.max_staleness, self.stopping.is_set)
                if latest is None:
                    return
                version, params = latest
                self.queue.put((batch_index, *self.collect(batch_index, version, params)))
                batch_index += 1
        except BaseException as e:  # surfaced in take()
            self.error = e

    def publish(self, version: int, params):
        self.weights.publish(version, params)

    def take(self, batch_index: int):
        while True:
            if self.error:
                raise self.error
            try:
                index, samples, gen = self.queue.get(timeout=1.0)
            except queue.Empty:
                continue
            assert index == batch_index, (index, batch_index)
            return samples, gen

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=600)


class ProcessActors:
    def __init__(self, cfg, workdir: str, first_batch: int, version: int, params):
        self.exchange = os.path.join(os.path.abspath(workdir), "exchange")
        shutil.rmtree(self.exchange, ignore_errors=True)  # rollouts of an earlier run are not this run's
        os.makedirs(self.exchange)
        with open(os.path.join(self.exchange, "config.json"), "w") as f:
            f.write(cfg.to_json())
        self.weights = DirectoryWeights(os.path.join(self.exchange, "weights"))
        self.rollouts = DirectoryRollouts(os.path.join(self.exchange, "rollouts"))
        self.publish(version, params)
        count = cfg.rl.actor_processes
        self.logs = [os.path.join(self.exchange, f"actor-{k}.log") for k in range(count)]
        self.processes = []
        for k in range(count):
            with open(self.logs[k], "w") as log:
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-m", "cwm_cli.main", "rl-actor", "--exchange", self.exchange, "--actor", str(k),
                     "--actors", str(count), "--first-batch", str(first_batch), "--learner-pid", str(os.getpid())],
                    stdout=log, stderr=subprocess.STDOUT))

    def publish(self, version: int, params):
        self.weights.publish(version, params)

    def take(self, batch_index: int):
        k = batch_index % len(self.processes)
        while True:
            got = self.rollouts.pop(batch_index)
            if got is not None:
                return got
            if self.processes[k].poll() is not None:
                with open(self.logs[k]) as f:
                    tail = f.read()[-2000:]
                raise CwmError(f"RL actor process {k} exited with code {self.processes[k].returncode}; "
                               f"{self.logs[k]} ends:\n{tail}")
            time.sleep(0.02)

    def stop(self):
        for p in self.processes:
            p.terminate()
        for p in self.processes:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def run_actor_process(exchange: str, actor: int, actors: int, first_batch: int, learner_pid: int):
    """An actor process's loop (`cwm rl-actor`): until the learner is gone, make its share of the batches."""
    import ml_collections
    from flax import nnx

    from cwm_rl.loop import initial_policy, make_collector

    with open(os.path.join(exchange, "config.json")) as f:
        cfg = ml_collections.ConfigDict(json.load(f))
    model, tokenizer = initial_policy(cfg)
    graphdef, params = nnx.split(model)
    like = nnx.to_pure_dict(params)
    weights = DirectoryWeights(os.path.join(exchange, "weights"))
    rollouts = DirectoryRollouts(os.path.join(exchange, "rollouts"))

    def learner_gone():
        try:
            os.kill(learner_pid, 0)
            return False
        except ProcessLookupError:
            return True

    batch_index = first_batch + (actor - first_batch) % actors
    with make_collector(cfg, tokenizer, graphdef) as collect:
        while True:
            latest = weights.wait_for(batch_index - cfg.rl.max_staleness, like, learner_gone)
            if latest is None:
                return
            rollouts.put(batch_index, *collect(batch_index, *latest))
            batch_index += actors
