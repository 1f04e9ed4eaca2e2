"""Where the files this repository ships live: configs, benchmarks, the corpus, SWE task folders."""

import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO, "configs")
DATA = os.path.join(REPO, "data")
BENCHMARKS = os.path.join(DATA, "benchmarks")
CORPUS = os.path.join(DATA, "corpus")
SWE_TASKS = os.path.join(DATA, "swe_tasks")
CRUXEVAL = os.path.join(BENCHMARKS, "cruxeval", "cruxeval.jsonl")
