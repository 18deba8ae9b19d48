"""`rlt experiment`: the plan of arms and students, the report's measures, and every stage end to end on a tiny
budget (one training step each, 16 problems a part) through rlt's own commands."""

import json
from pathlib import Path

import pytest
import yaml

from rlt.errors import UsageError
from rlt.experiment import RECIPES, ExperimentArguments, Plan, kl_coeffs, run_experiment
from rlt.tools.experiment_report import explanation_text, verdict


def test_the_plan_names_every_teacher_and_student_and_pairs_rl_seeds_with_distillation_seeds():
    plan = Plan(ExperimentArguments(kl_scales=[3.0, 0.0], rl_seeds=[0, 1], distill_seeds=[5, 6],
                                    variants=["full", "conservative"]))  # fmt: skip
    assert [t.name for t in plan.teachers] == ["warmup", "rl-lam3-r0", "rl-lam3-r1", "rl-lam3-conservative-r0",
                                               "rl-lam3-conservative-r1", "rl-lam0-r0", "rl-lam0-r1"]  # fmt: skip
    assert "--beta" in plan.teachers[3].flags and plan.teachers[1].flags == ()
    students = {s.name: s for s in plan.students}
    assert students["base"].source is None
    assert [s.seed for s in plan.students if s.arm == "expert"] == [5, 6]
    # a student is one draw of both seeds: RL seed i is distilled with distillation seed i
    assert students["rl-lam3-r1-first-d6"].source == "rl-lam3-r1.first"
    assert students["rl-lam3-r0-top-d5"].arm == "rl-lam3 top"  # the halves: the first λ's plain arm only
    assert "rl-lam0-r0-top-d5" not in students and "rl-lam3-conservative-r0-top-d5" not in students
    assert plan.arms == ["base", "expert", "solutions", "warmup", "rl-lam3", "rl-lam3 top", "rl-lam3 bottom",
                         "rl-lam3-conservative", "rl-lam0"]  # fmt: skip
    pairs = plan.comparisons()
    assert ("rl-lam3", "warmup") in pairs and ("rl-lam0", "expert") in pairs
    assert ("rl-lam3 top", "rl-lam3 bottom") in pairs and ("expert", "solutions") in pairs


def test_arguments_refuse_what_cannot_run(tmp_path):
    with pytest.raises(UsageError, match="unknown stage or variant"):
        ExperimentArguments(stages=["rl", "distil"])
    with pytest.raises(UsageError, match="λ >= 0"):
        ExperimentArguments(kl_scales=[-1.0])
    with pytest.raises(UsageError, match=r"no traces\.yaml"):
        ExperimentArguments(recipes=str(tmp_path))


def test_a_lambda_scales_the_recipes_pair_of_kl_coefficients():
    recipe = RECIPES / "train.yaml"
    assert yaml.safe_load(recipe.read_text())["kl_coeffs"] == [3.0, 0.03]
    assert kl_coeffs(recipe, 3.0) == ["3", "0.03"]
    assert kl_coeffs(recipe, 1.0) == ["1", "0.01"]
    assert kl_coeffs(recipe, 0.0) == ["0", "0"]


def test_the_verdict_reads_the_interval():
    differences = {"a - b": {"greedy": {"mean": 0.05, "low": 0.01, "high": 0.09}},
                   "c - b": {"greedy": {"mean": -0.05, "low": -0.09, "high": -0.01}},
                   "d - b": {"greedy": {"mean": 0.02, "low": -0.01, "high": 0.05}}}  # fmt: skip
    assert verdict(differences, "a", "b").startswith("**a beat b**: +0.050 [+0.010, +0.090]")
    assert verdict(differences, "c", "b").startswith("**c did worse than b**")
    assert verdict(differences, "d", "b").startswith("**d and b are not told apart**")
    assert verdict(differences, "e", "b") == "e against b: not measured."


def test_explanation_text_counts_backups_true_arithmetic_the_path_and_copied_lines():
    solution = "So 12 - 7 = 5, 5 - 3 = 2."
    walked = "Try 12 + 7 = 19, left 3, 19.\nBack to 12, 7, 3.\nTry 12 - 7 = 5, left 3, 5.\n  5 - 3 = 2. Yes!"
    wrong = "Try 12 - 7 = 4, left 3, 4.\n  4 - 3 = 1. No."
    copied = "So 12 - 7 = 5, 5 - 3 = 2."
    rows = [{"completion": text, "solution": solution} for text in (walked, wrong, copied)]
    measured = explanation_text(rows)
    assert measured["back-ups"] == pytest.approx(1 / 3)
    assert measured["true arithmetic"] == pytest.approx(6 / 7)  # 3 of 3, 1 of 2 ("12 - 7 = 4" is false), 2 of 2
    assert measured["walks the path"] == pytest.approx(2 / 3)
    assert measured["copies a solution line"] == pytest.approx(1 / 3)


# ------------------------------------------------------------------------------------- every stage, end to end


def in_process(argv: list[str], log: Path) -> float:
    """Run a command in this process (the suite's time: no interpreter start per command)."""
    from rlt.cli import main

    assert main(argv) == 0, argv
    log.write_text(" ".join(argv))
    return 0.0


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """One RL seed at the paper's λ, two distillation seeds (the second expert student is the judge), on recipes cut
    to seconds: 16 problems a part, one step of each training, short generations."""
    root = tmp_path_factory.mktemp("experiment")
    recipes = root / "recipes"
    recipes.mkdir()
    smaller = {"train.yaml": {"per_device_train_batch_size": 8, "num_generations": 4, "max_completion_length": 48},
               "eval.yaml": {"max_new_tokens": 48, "batch_size": 16},
               "distill.yaml": {"per_device_train_batch_size": 8},
               "warmup.yaml": {"per_device_train_batch_size": 8}}  # fmt: skip
    for recipe in RECIPES.glob("*.yaml"):
        settings = yaml.safe_load(recipe.read_text()) | smaller.get(recipe.name, {})
        (recipes / recipe.name).write_text(yaml.safe_dump(settings))
    args = ExperimentArguments(output_dir=str(root / "run"), recipes=str(recipes), kl_scales=[3.0], rl_seeds=[0],
                               distill_seeds=[0, 1], variants=["full", "lora"], quick=True)  # fmt: skip
    launched: list[list[str]] = []

    def launch(argv: list[str], log: Path) -> float:
        launched.append(argv)
        return in_process(argv, log)

    report = run_experiment(args, launch)
    return root / "run", report, launched, args


def test_every_stage_writes_what_the_next_reads(experiment):
    from safetensors.torch import load_file

    run, _, launched, _ = experiment
    weights = {name: load_file(run / name / "model.safetensors")
               for name in ("teachers/warmup", "students/expert-d0", "students/expert-d1")}  # fmt: skip
    for a, b in (("teachers/warmup", "students/expert-d0"), ("students/expert-d0", "students/expert-d1")):
        assert any(not weights[a][k].equal(weights[b][k]) for k in weights[a]), (a, b)  # each trained, its own way
    commands = [argv[0] for argv in launched]
    assert commands.count("train") == 2 and commands.count("warmup") == 1  # full fine-tuning and LoRA
    assert commands.count("distill") == 10 and commands.count("eval") == 11  # the base is graded, not distilled
    train = next(argv for argv in launched if argv[0] == "train")
    assert train[train.index("--kl_coeffs") + 1 : train.index("--kl_coeffs") + 3] == ["3", "0.03"]
    assert train[train.index("--student") + 1] == str(run / "students" / "expert-d0")  # the reward's student
    rl = run / "teachers" / "rl-lam3-r0"
    assert json.loads((rl / "trainer_state.json").read_text())["global_step"] == 1
    assert len((rl / "completions.jsonl").read_text().splitlines()) == 8  # every completion of the step
    explained = [json.loads(line) for line in (run / "sources" / "rl-lam3-r0.jsonl").read_text().splitlines()]
    assert len(explained) == 32 and {r["sample"] for r in explained} == {0, 1}  # 16 problems, twice each
    top, bottom = ([json.loads(line) for line in (run / "sources" / f"rl-lam3-r0.{pick}.jsonl").open()]
                   for pick in ("top", "bottom"))  # fmt: skip
    assert [r["key"] for r in top] == [r["key"] for r in bottom] and top
    assert all(t["reward"] > b["reward"] for t, b in zip(top, bottom, strict=True))
    first = (run / "sources" / "rl-lam3-r0.first.jsonl").read_text().splitlines()
    assert len(first) == 16 and (run / "sources" / "rl-lam3-r0.first.jsonl.provenance.json").exists()


def test_the_report_gives_arms_differences_steps_and_two_readers(experiment):
    run, report, _, _ = experiment
    record = json.loads((run / "report" / "report.json").read_text())
    assert record["arms"]["expert"]["students"] == 2 and record["arms"]["rl-lam3"]["students"] == 1
    assert record["arms"]["rl-lam3-lora"]["students"] == 1 and "rl-lam3-lora - warmup" in record["differences"]
    assert record["arms"]["base"]["greedy"]["n"] == 16  # the held-out problems, each a unit of the interval
    difference = record["differences"]["rl-lam3 - warmup"]["greedy"]
    assert difference["seeds"] == [1, 2] and difference["low"] <= difference["mean"] <= difference["high"]
    steps = record["rl_steps"]["rl-lam3"]
    assert steps["step"] == [1] and steps["reward"][0] < 0 and 0 <= steps["true arithmetic"][0] <= 1
    assert set(record["readers"]) == {"warmup", "rl-lam3-r0", "rl-lam3-lora-r0"}
    assert all(isinstance(entry["judge"], float) for entry in record["readers"].values())
    text = report.read_text()
    assert "rl-lam3 against warmup" in text or "rl-lam3 and warmup" in text or "rl-lam3 beat warmup" in text
    assert "--quick" in text and "| expert | 2 |" in text
    for name in ("pass_at_1.png", "rl_steps.png", "inspect/warmup.html", "inspect/rl-lam3-r0.html"):
        assert (run / "report" / name).stat().st_size > 1000, name


def test_a_rerun_launches_nothing(experiment):
    *_, args = experiment
    again: list[list[str]] = []
    run_experiment(args, lambda argv, log: again.append(argv) or 0.0)
    assert again == []


def test_the_reward_students_reading_through_rlt_score_reproduces_the_recorded_reward(experiment):
    # the readers are scored in the recipe's format with the teacher's reward: the reward's student must then give
    # back the r_SS that `rlt traces` recorded for the very explanations (another format would not)
    run, _, _, _ = experiment
    record = json.loads((run / "report" / "report.json").read_text())
    for teacher in ("warmup", "rl-lam3-r0"):
        rows = [json.loads(line) for line in (run / "sources" / f"{teacher}.first.jsonl").open()]
        recorded = sum(r["solution_logprob_mean"] for r in rows) / len(rows)
        assert record["readers"][teacher]["reward student"] == pytest.approx(recorded, abs=1e-4)
        assert record["readers"][teacher]["judge"] != pytest.approx(recorded, abs=1e-4)  # another student


def test_a_run_with_other_settings_in_the_same_directory_is_refused(experiment):
    *_, args = experiment
    full = ExperimentArguments(**{**args.__dict__, "quick": False})
    with pytest.raises(UsageError, match="other quick"):
        run_experiment(full, lambda argv, log: pytest.fail(f"launched {argv}"))


def test_students_graded_on_other_problems_are_not_paired(tmp_path):
    from rlt.tools.experiment_report import student_table

    plan = Plan(ExperimentArguments(kl_scales=[3.0], rl_seeds=[0], distill_seeds=[0]))
    (tmp_path / "grades").mkdir()
    for name, data in (("base", {"max_problems": 2}), ("expert-d0", {"max_problems": 3})):
        grades = {"records": [{"index": i, "correct": i == 0} for i in range(2)],
                  "provenance": {"settings": {"data": data, "eval": {"num_samples": 0, "model": name}}}}  # fmt: skip
        (tmp_path / "grades" / f"{name}.json").write_text(json.dumps(grades))
    with pytest.raises(ValueError, match="grades other problems"):
        student_table(plan, tmp_path)


@pytest.mark.parametrize("variant", ["conservative", "lora"])
def test_each_variant_is_flags_rlt_train_takes_with_the_recipe(variant, tmp_path):
    from trl import ModelConfig

    from rlt.configs import DataArguments, FormatArguments, RewardArguments, RLTGRPOConfig, parse
    from rlt.experiment import VARIANTS

    argv = ["--config", str(RECIPES / "train.yaml"), "--output_dir", str(tmp_path), *VARIANTS[variant]]
    model, *_, config = parse((ModelConfig, DataArguments, FormatArguments, RewardArguments, RLTGRPOConfig), argv)
    if variant == "conservative":  # the paper's: a KL to a reference that follows the teacher, a small step
        assert (config.beta, config.sync_ref_model, config.ref_model_mixup_alpha) == (0.04, True, 0.9)
        assert (config.ref_model_sync_steps, config.learning_rate) == (32, 1e-5)
    else:
        assert model.use_peft and (model.lora_r, model.lora_alpha) == (16, 32)
