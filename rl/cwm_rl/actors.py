"""Actors for the asynchronous loop: batch b (trained as policy version b) is generated with the newest
weights once their version is >= b - max_staleness; until then the actor waits, so no rollout is ever older
than the bound and nothing is generated only to be thrown away.

`ThreadActor`: one background thread in the learner's process, weights passed by reference (a copy).
`ProcessActors`: N `cwm rl-actor` processes; weights go out and rollouts come back through `WORKDIR/exchange/`
(actor k makes batches b with b % N == k). The learner launches them on this host, or (rl.launch_actors
False) prints their commands for other hosts that share WORKDIR; either way an actor stops once the learner
says so or its heartbeat file goes stale. Both: publish(version, params), take(b), stop().
"""

import json
import os
import queue
import shlex
import shutil
import subprocess
import sys
import threading
import time

import ml_collections
from flax import nnx

from cwm_common.errors import CwmError
from cwm_jax.sharding import ShardingRules
from cwm_rl.collector import initial_policy, make_collector
from cwm_rl.rollout_channel import DirectoryRollouts
from cwm_rl.sampler_layout import SamplerLayout
from cwm_rl.weight_channels import InProcessWeights, WeightVersions


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


HEARTBEAT, STOPPED, RUN = "learner.heartbeat", "learner.stopped", "run.json"
HEARTBEAT_EVERY_S = 2.0


class ProcessActors:
    def __init__(self, cfg, workdir: str, first_batch: int, version: int, params, log=print):
        self.exchange = os.path.join(os.path.abspath(workdir), "exchange")
        shutil.rmtree(self.exchange, ignore_errors=True)  # rollouts of an earlier run are not this run's
        os.makedirs(self.exchange)
        with open(os.path.join(self.exchange, "config.json"), "w") as f:
            f.write(cfg.to_json())
        self.weights = WeightVersions(os.path.join(self.exchange, "weights"))
        self.rollouts = DirectoryRollouts(os.path.join(self.exchange, "rollouts"))
        self.publish(version, params)
        self.count, self.timeout_s = cfg.rl.actor_processes, cfg.rl.actor_timeout_s
        self.stopping = threading.Event()
        self._beat()
        self.heart = threading.Thread(target=self._heartbeat, daemon=True)
        self.heart.start()
        with open(os.path.join(self.exchange, RUN), "w") as f:  # last: actors start once it exists
            json.dump({"actors": self.count, "first_batch": first_batch}, f)
        self.logs = [os.path.join(self.exchange, f"actor-{k}.log") for k in range(self.count)]
        self.processes = []
        for k in range(self.count):
            command = ["cwm", "rl-actor", "--exchange", self.exchange, "--actor", str(k)]
            if not cfg.rl.launch_actors:
                log(f"start actor {k} on a host that shares {self.exchange}: {shlex.join(command)}")
                continue
            with open(self.logs[k], "w") as out:
                self.processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "cwm_cli.main", *command[1:], "--learner-pid", str(os.getpid())],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )

    def _beat(self):
        with open(os.path.join(self.exchange, HEARTBEAT), "w") as f:
            f.write(str(time.time()))

    def _heartbeat(self):
        while not self.stopping.wait(HEARTBEAT_EVERY_S):
            self._beat()

    def publish(self, version: int, params):
        self.weights.publish(version, params)

    def take(self, batch_index: int):
        k = batch_index % self.count
        deadline = time.monotonic() + self.timeout_s
        while True:
            got = self.rollouts.pop(batch_index)
            if got is not None:
                return got
            if self.processes and self.processes[k].poll() is not None:
                with open(self.logs[k]) as f:
                    tail = f.read()[-2000:]
                raise CwmError(
                    f"RL actor process {k} exited with code {self.processes[k].returncode}; "
                    f"{self.logs[k]} ends:\n{tail}"
                )
            if time.monotonic() > deadline:
                raise CwmError(
                    f"no rollouts for batch {batch_index} from actor {k} in {self.timeout_s:g} s "
                    f"(rl.actor_timeout_s): is `cwm rl-actor --exchange {self.exchange} --actor {k}` "
                    f"running?"
                )
            time.sleep(0.02)

    def stop(self):
        self.stopping.set()
        with open(os.path.join(self.exchange, STOPPED), "w"):
            pass
        for p in self.processes:
            p.terminate()
        for p in self.processes:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def run_actor_process(exchange: str, actor: int, learner_pid: int | None = None, learner_timeout_s: float = 60.0):
    """An actor process's loop (`cwm rl-actor`): until the learner stops (its stop file, its heartbeat older
    than learner_timeout_s, or, on its host, its pid gone), make its share of the batches."""
    run_file = os.path.join(exchange, RUN)
    if not os.path.exists(run_file):
        raise CwmError(f"{run_file} is missing: start the learner (cwm rl) first")
    with open(run_file) as f:
        run = json.load(f)
    actors, first_batch = run["actors"], run["first_batch"]
    if not 0 <= actor < actors:
        raise CwmError(f"--actor {actor}: the learner expects actors 0-{actors - 1}")
    with open(os.path.join(exchange, "config.json")) as f:
        cfg = ml_collections.ConfigDict(json.load(f))
    model, tokenizer = initial_policy(cfg)
    graphdef, params = nnx.split(model)
    del model
    # The same decoding layout as the learner's own sampler, on this process's devices.
    rules = ShardingRules.with_overrides(cfg.param_rules.to_dict(), cfg.activation_rules.to_dict())
    layout = SamplerLayout(params, cfg.rl.sampler_mesh, rules, cfg.rl.sampler_dtype)
    weights = WeightVersions(os.path.join(exchange, "weights"))
    rollouts = DirectoryRollouts(os.path.join(exchange, "rollouts"))
    print(f"actor {actor}: sampler mesh {dict(layout.mesh.shape)} in {cfg.rl.sampler_dtype}", flush=True)

    def learner_gone():
        if os.path.exists(os.path.join(exchange, STOPPED)):
            return True
        try:
            if time.time() - os.path.getmtime(os.path.join(exchange, HEARTBEAT)) > learner_timeout_s:
                return True
        except FileNotFoundError:  # a newer run of the learner is setting up the exchange
            return True
        if learner_pid is not None:
            try:
                os.kill(learner_pid, 0)
            except ProcessLookupError:
                return True
        return False

    batch_index = first_batch + (actor - first_batch) % actors
    with make_collector(cfg, tokenizer, graphdef) as collect:
        while True:
            # Restored straight into this process's decoding layout.
            latest = weights.wait_for(batch_index - cfg.rl.max_staleness, layout.abstract, learner_gone)
            if latest is None:
                return
            version, published = latest
            rollouts.put(batch_index, *collect(batch_index, version, published))
            batch_index += actors
