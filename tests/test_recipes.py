"""Every shipped recipe parses into the configs of its command: no unknown or misspelled keys."""

from pathlib import Path

import pytest
import yaml
from trl import ModelConfig

from rlt.configs import ColdStartConfig, DataArguments, FormatArguments, RewardArguments, RLTGRPOConfig, RLTSFTConfig
from rlt.configs import parse as _parse
from rlt.measure.evaluate import EvalArguments
from rlt.sampling.traces import TracesArguments
from rlt.train.sft import DistillArguments

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
COMMAND_CONFIGS = {
    "warmup": (ModelConfig, DataArguments, FormatArguments, RLTSFTConfig),
    "train": (ModelConfig, DataArguments, FormatArguments, RewardArguments, RLTGRPOConfig),
    "distill": (ModelConfig, DistillArguments, RLTSFTConfig),
    "coldstart": (ModelConfig, DataArguments, FormatArguments, ColdStartConfig),
    "eval": (EvalArguments, DataArguments, FormatArguments, RewardArguments),
    "traces": (TracesArguments, DataArguments, FormatArguments, RewardArguments),
}


@pytest.mark.parametrize("recipe", sorted(p for p in RECIPES.glob("*/*.yaml") if p.parent.name != "accelerate"))
def test_recipe_parses(recipe, tmp_path):
    command = recipe.stem.split("_")[0]
    values = yaml.safe_load(recipe.read_text())
    if command in ("eval", "traces") and recipe.parent.name == "cpu":  # the transfer experiment's countdown stages
        args, data_args, *_ = _parse(COMMAND_CONFIGS[command], ["--config", str(recipe)])
        assert (data_args.dataset, data_args.holdout, data_args.max_problems) == ("countdown", 100, 64)
        assert args.part == ("train" if command == "traces" else "holdout")
        return
    if recipe.parent.name == "micro":  # every stage of the micro-world reads one split of one problem range
        extra = [] if command in ("eval", "traces") else ["--output_dir", str(tmp_path)]
        parsed = _parse(COMMAND_CONFIGS[command], ["--config", str(recipe), *extra])
        data = next((p for p in parsed if isinstance(p, DataArguments)), None)
        if data is not None:
            split = (data.dataset, data.countdown_max_number, data.countdown_target, data.countdown_problems,
                     data.holdout, data.countdown_solution, data.search_restate_move)  # fmt: skip
            assert split == ("countdown:3", 13, 2, 1141, 500, "steps", True)
        assert all(p.style == "micro" for p in parsed if isinstance(p, FormatArguments))
        return
    if command == "eval":
        args, data_args, *_ = _parse(COMMAND_CONFIGS[command], ["--config", str(recipe)])
        assert (args.max_new_tokens, data_args.dataset) == (32768, values["dataset"])
        assert "{question}" in args.question_template and "boxed{}" in args.question_template.format(question="")
        # SkyThought's settings: greedy 32k-token answers through vLLM, under the Stratos student prompt
        assert args.use_vllm == "true" and not args.num_samples
        assert parsed_format(recipe).student_system_prompt == "@runs/paper/student_system_prompt.txt"
        return
    parsed = _parse(COMMAND_CONFIGS[command], ["--config", str(recipe), "--output_dir", str(tmp_path)])
    config = parsed[-1]
    assert config.learning_rate == pytest.approx(values["learning_rate"])
    if command == "train":
        assert config.temperature == pytest.approx(0.7)
        # the recipe's own coefficients reach the reward: the paper's, or the CPU recipe's re-tuned 0.3x
        assert parsed[3].reward_config(config.temperature).kl_coeffs == tuple(values.get("kl_coeffs", (3.0, 0.03)))
    if command == "coldstart":  # the student RL reads the data it is rewarded on, with its format term
        assert (parsed[1].dataset, config.format_weight) == (values["dataset"], values["format_weight"])


def parsed_format(recipe: Path) -> FormatArguments:
    return _parse(COMMAND_CONFIGS["eval"], ["--config", str(recipe)])[2]


def test_paper_recipe_has_the_original_rl_settings(tmp_path):
    values = yaml.safe_load((RECIPES / "paper" / "train.yaml").read_text())
    assert values["num_generations"] == 64 and values["beta"] == 0.04 and values["loss_type"] == "grpo"
    assert (values["ref_model_mixup_alpha"], values["ref_model_sync_steps"]) == (0.9, 32)
    assert values["learning_rate"] == 1e-6 and values["lr_scheduler_type"] == "constant"
    assert values["max_steps"] == 125
    assert values["per_device_train_batch_size"] * values["gradient_accumulation_steps"] * 4 == 1024


@pytest.mark.parametrize("config", sorted((RECIPES / "accelerate").glob("*.yaml")))
def test_accelerate_configs_are_valid_yaml(config):
    values = yaml.safe_load(config.read_text())
    assert values["distributed_type"] in {"MULTI_GPU", "DEEPSPEED", "FSDP"}
    assert values["num_processes"] >= 1


def readme_commands() -> list[list[str]]:
    """Every `.venv/bin/rlt ...` line of the README's bash blocks (continuations joined, comments dropped), with the
    block's shell variables filled in."""
    import re
    import shlex

    readme = (RECIPES.parent / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        text = block.replace("\\\n", " ")
        variables = dict(re.findall(r'^(\w+)="?([^"\n#]*?)"?\s*(?:#.*)?$', text, re.M))
        for line in text.splitlines():
            if line.startswith(".venv/bin/rlt "):
                for name, value in variables.items():
                    line = line.replace(f"${name}", value)
                line = line.split("  #")[0]
                commands.append(shlex.split(line)[1:])
    return commands


def test_every_rlt_command_in_the_readme_parses():
    """The README's commands take the flags they are given (the review: `rlt score --skip_invalid` was documented
    and rejected): each parses, recipes and ranges checked, as the command would parse it."""
    from rlt.configs import InspectArguments, ScoreArguments
    from rlt.experiment import ExperimentArguments
    from rlt.measure.reward_check import CheckRewardArguments
    from rlt.tools.demo import DemoArguments

    configs = COMMAND_CONFIGS | {"score": (ScoreArguments,), "inspect": (InspectArguments,), "demo": (DemoArguments,),
                                 "experiment": (ExperimentArguments,),
                                 "check-reward": (CheckRewardArguments, DataArguments, FormatArguments,
                                                  RewardArguments)}  # fmt: skip
    commands = readme_commands()
    assert len(commands) >= 15 and {c[0] for c in commands} >= {"score", "train", "traces", "eval", "plot"}
    for command, *argv in commands:
        if command == "plot":
            assert 1 <= len(argv) <= 2 and not argv[0].startswith("-")
            continue
        if command in ("score", "inspect") and not argv[0].startswith("-"):
            argv = ["--rows", *argv]
        _parse(configs[command], argv)


def test_the_readmes_own_data_block_runs_as_written(tmp_path):
    """Issue 35 §18: the README's own-data commands, as written (the CPU recipes, one model named once), run from a
    folder holding only mine.jsonl: every stage writes what the next reads, and eval grades only the held-out 10."""
    import json

    from benchmarks.own_data import run_block
    from rlt.testing import save_tiny

    rows = [{"question": f"What is {i} + {i + 2}?", "solution": f"{i} + {i + 2} = {2 * i + 2}.",
             "answer": str(2 * i + 2)} for i in range(24)]  # fmt: skip
    steps = run_block(tmp_path, rows, model=str(save_tiny(tmp_path / "tiny")), timeout=600)
    assert [s["command"] for s in steps] == ["warmup", "train", "traces", "score", "distill", "eval"]
    assert all(s["seconds"] > 0 and s["peak_rss_gb"] > 0.1 for s in steps)
    out = tmp_path / "runs" / "mine"
    traces = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
    assert len(traces) == 14 and {t["question"] for t in traces} == {r["question"] for r in rows[:14]}
    scored = [json.loads(line) for line in (out / "scored.jsonl").read_text().splitlines()]
    assert len(scored) == 14 and all("student_input_ids" in s for s in scored)
    assert (out / "student" / "model.safetensors").exists() and (out / "rl" / "model.safetensors").exists()
    graded = json.loads((out / "eval.json").read_text())
    held_out = {r["question"] for r in rows[14:]}
    assert graded["questions"] == 10 and {r["question"] for r in graded["records"]} == held_out
