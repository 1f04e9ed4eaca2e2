"""The smallest proxy trained on the corpus the repo ships, on CPU, in about a minute."""

from configs.train_defaults import base


def get_config():
    c = base("cwm-tiny")
    c.data.kind = "shipped"
    c.data.seq_len = 128
    c.data.tokenizer_vocab = c.model.vocab_size - 256  # CWM layout: regular tokens, then 256 specials
    c.steps = 150
    c.batch_size = 8
    c.optimizer.peak_lr = 3e-3
    c.optimizer.warmup_steps = 15
    c.checkpoint_every = 50
    return c
