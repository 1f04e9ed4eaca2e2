"""How the layer stack is compiled: a scan over a repeating block of layers plus an unrolled tail.

The attention type of each layer is static (kernels need the window at compile time), so the scan body
holds one whole period of the local/global pattern: CWM's 64 layers (global every 4th) compile as one
block of 4. A pattern that breaks near the end (e.g. a last global layer) leaves a short unrolled tail.
"""

import dataclasses

from cwm_jax.config import ModelConfig


@dataclasses.dataclass(frozen=True)
class LayerPlan:
    period: int  # layers in the scanned block
    n_blocks: int  # times the block repeats
    n_layers: int

    @property
    def tail(self) -> range:
        """Indices of the layers after the scanned blocks, run unrolled."""
        return range(self.period * self.n_blocks, self.n_layers)


def plan_layers(cfg: ModelConfig) -> LayerPlan:
    """The period that compiles the fewest layer bodies (block + tail); the smallest one on ties."""
    types, n = cfg.layer_types, cfg.n_layers
    best: tuple[int, LayerPlan] | None = None
    for period in range(1, n + 1):
        n_blocks = 1
        while (n_blocks + 1) * period <= n and types[n_blocks * period : (n_blocks + 1) * period] == types[:period]:
            n_blocks += 1
        cost = period + n - n_blocks * period
        if best is None or cost < best[0]:
            best = (cost, LayerPlan(period, n_blocks, n))
    assert best is not None  # ModelConfig validates n_layers >= 1
    return best[1]
