"""rlt: Reinforcement-Learned Teachers (Cetin, Zhao & Tang, arXiv 2506.08388).

The package, by concern (README "Where things are"):

    rlt.reward     the RLT reward: formula and `RLTReward` (here), tag formats, alignment, log-probs, several students
    rlt.data       datasets and their adapters, the countdown generator
    rlt.train      teacher warm-up and RL, student distillation and RL, what every run shares
    rlt.sampling   generation (transformers or vLLM) and trace collection
    rlt.measure    scoring, evaluation, teaching comparisons, reward checks, statistics, leakage
    rlt.tools      the inspector, plots, the demo
    rlt.cli, rlt.configs, rlt.models, rlt.provenance, rlt.errors, rlt.testing

The public API is the names below (`from rlt import RLTReward`), imported when first used so that `import rlt` and
`rlt --help` stay fast. The flat module paths of rlt 0.1 (`rlt.coldstart`, `rlt.formats`, …) still import, as the
modules they became.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: Public name -> the module that defines it.
PUBLIC = {
    "RLTReward": "rlt.reward",
    "RewardConfig": "rlt.reward",
    "RewardBreakdown": "rlt.reward",
    "rlt_reward": "rlt.reward",
    "AlignedSample": "rlt.reward.align",
    "AlignmentError": "rlt.reward.align",
    "MultiStudentReward": "rlt.reward.students",
    "Student": "rlt.reward.students",
    "TagStyle": "rlt.reward.formats",
    "Problem": "rlt.data",
    "DataError": "rlt.data",
    "load_problems": "rlt.data",
    "load_model": "rlt.models",
    "RLTGRPOTrainer": "rlt.train.trainer",
    "CorrectnessReward": "rlt.train.coldstart",
    "FormatReward": "rlt.train.coldstart",
    "RewardArguments": "rlt.configs",
    "RLTGRPOConfig": "rlt.configs",
    "UsageError": "rlt.errors",
}

#: rlt 0.1's flat module paths -> where each module lives now.
MOVED = {
    "rlt.formats": "rlt.reward.formats", "rlt.align": "rlt.reward.align", "rlt.logprobs": "rlt.reward.logprobs",
    "rlt.students": "rlt.reward.students", "rlt.countdown": "rlt.data.countdown", "rlt.runs": "rlt.train.runs",
    "rlt.sft": "rlt.train.sft", "rlt.trainer": "rlt.train.trainer", "rlt.coldstart": "rlt.train.coldstart",
    "rlt.generation": "rlt.sampling.generation", "rlt.traces": "rlt.sampling.traces",
    "rlt.scoring": "rlt.measure.scoring", "rlt.evaluate": "rlt.measure.evaluate",
    "rlt.teaching": "rlt.measure.teaching", "rlt.reward_check": "rlt.measure.reward_check",
    "rlt.stats": "rlt.measure.stats",
    "rlt.leakage": "rlt.measure.leakage", "rlt.inspector": "rlt.tools.inspector", "rlt.plots": "rlt.tools.plots",
    "rlt.demo": "rlt.tools.demo",
}  # fmt: skip


def __getattr__(name: str):
    if name in PUBLIC:
        return getattr(importlib.import_module(PUBLIC[name]), name)
    raise AttributeError(f"module 'rlt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *PUBLIC])


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`import rlt.coldstart` gives the module `rlt.train.coldstart` itself (one module object, not a copy)."""

    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname in MOVED else None

    def create_module(self, spec):
        module = importlib.import_module(MOVED[spec.name])
        spec.loader_state = module.__spec__  # the import system stamps the alias's spec on it: put the real one back
        return module

    def exec_module(self, module):  # the module ran when it was imported under its own name
        module.__spec__ = module.__spec__.loader_state


sys.meta_path.append(_MovedModules())
