"""GRPO on CPU: a tiny CWM learns a sandbox-checked task (the demo's last stage).

Set policy.model to any saved model (a training workdir: the demo passes the tiny model it just trained; a cwm
model directory; a Hugging Face directory); with none, a freshly initialized cwm-tiny is used with
policy.tokenizer.
"""

import ml_collections

from configs.train_defaults import base


def get_config():
    c = ml_collections.ConfigDict()
    defaults = base("cwm-tiny")
    # The model when no policy.model is given; its execution fields (dtype, remat, attention_impl, ...) also
    # apply to a loaded policy.
    c.model = defaults.model
    # The learner runs on the trainer's mesh with the trainer's rules; rows (prompts x group) split over the
    # batch axes, grad_accum micro-batches per update.
    c.mesh = defaults.mesh
    c.param_rules = defaults.param_rules
    c.activation_rules = defaults.activation_rules
    c.grad_accum = 1
    c.policy = ml_collections.ConfigDict(dict(model="", tokenizer=""))
    c.rl = ml_collections.ConfigDict(
        dict(
            # Task mixture weights; every task is listed so any can be turned on from the command line.
            tasks=ml_collections.ConfigDict(
                dict(echo_bit=1.0, echo=0.0, arithmetic=0.0, math=0.0, humaneval=0.0, cruxeval=0.0, stdio=0.0, swe=0.0)
            ),
            # async: actors generate while the learner trains; actor_processes 0 runs one actor thread in this
            # process, N > 0 launches N `cwm rl-actor` processes exchanging weights and rollouts via WORKDIR/exchange;
            # with launch_actors False the learner launches none and prints the N commands to run on other hosts
            # that share WORKDIR (it fails if an actor's batch is actor_timeout_s late).
            mode="async",
            actor_processes=0,
            launch_actors=True,
            actor_timeout_s=600.0,
            prompts_per_step=8,
            group_size=8,
            max_new_tokens=6,
            temperature=1.0,
            top_p=1.0,
            eps_low=0.2,
            eps_high=0.28,
            normalize_std=False,
            kl_coef=0.0,
            max_staleness=1,
            budget_tokens=0,
            max_turns=6,
            max_episode_tokens=448,
            tool_timeout_s=10.0,
            episode_timeout_s=600.0,
            # The sampler generates on the learner's devices laid out for decoding: this mesh (tensor parallel
            # by default; a dimension that does not divide is replicated), resharded on device after each update.
            # In a multi-process run the mesh is over each process's own devices: every process decodes its
            # own rows on a full replica. The sampler's params (and the weight versions actor processes read)
            # are in sampler_dtype.
            sampler_mesh=ml_collections.ConfigDict(dict(data=1, fsdp=1, tensor=-1, sequence=1)),
            sampler_dtype="bfloat16",
            logprob_chunk=512,  # positions per output-head chunk when the learner takes log-probs
            sandbox_backend="bwrap",
            sandbox_memory_mb=512,
            swe_tasks="",  # a folder of SWE task folders (`cwm gen-tasks` output) for `swe`; "": the shipped ones
            pool_size=4,
        )
    )
    c.optimizer = defaults.optimizer
    c.optimizer.peak_lr = 5e-4
    c.optimizer.warmup_steps = 0
    c.optimizer.schedule = "constant"
    c.steps = 30
    c.checkpoint_every = 10
    c.keep_checkpoints = 2
    c.log_every = 1
    c.seed = 0
    return c
