"""What a rollout produces: one sample per episode, in token space (the token-level contract between the
actor and the learner: no re-tokenization in between)."""

import dataclasses

# failed: the policy's own failure (its episode ran out of time), trained on with reward -1.
# infra_failed: the infrastructure's (a sandbox died, an exec raised, no sandbox in time): left out of the
# loss and of the group's baseline, so a broken container never teaches the policy anything.
OK, FAILED, INFRA_FAILED = "ok", "failed", "infra_failed"


@dataclasses.dataclass
class Sample:
    task: str
    group: int  # samples of the same prompt share a group
    prompt: list[int]
    completion: list[int]  # everything after the prompt: model tokens and environment tokens
    model_mask: list[int]  # 1 on tokens the model generated (trained), 0 on environment tokens
    logprobs: list[float]  # behaviour-policy log-prob of each completion token (0 on environment tokens)
    reward: float  # outcome reward, placed on the last model token
    version: int  # policy version that generated the sample
    status: str = OK
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def trained(self) -> bool:
        return self.status != INFRA_FAILED

    @property
    def model_tokens(self) -> int:
        return sum(self.model_mask)
