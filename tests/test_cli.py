import importlib.util
import json

import pytest

from benchmarks.verify_scored import max_deviation
from rlt.cli import main
from rlt.reward import RewardConfig
from rlt.testing import save_tiny, tiny_model
from tests.test_reward import ADVERSARIAL, QUESTION, SOLUTION


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return str(save_tiny(root / "student", seed=0)), str(save_tiny(root / "teacher", seed=1))


def test_score_writes_components_and_details(tmp_path, model_dirs, capsys):
    student_dir, teacher_dir = model_dirs
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(
            json.dumps({"question": QUESTION, "solution": SOLUTION, "explanation": c}) + "\n"
            for c in ADVERSARIAL.values()
        )
    )
    out = tmp_path / "scored.jsonl"
    code = main(
        [
            "score",
            str(rows),
            "--out",
            str(out),
            "--teacher",
            teacher_dir,
            "--student",
            student_dir,
            "--details",
            "--batch_rows",
            "3",
        ]
    )
    assert code == 0
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(scored) == len(ADVERSARIAL)
    student, teacher = tiny_model(0), tiny_model(1)
    assert max(max_deviation(r, student, teacher, RewardConfig()) for r in scored) <= 1e-4
    assert sum(r["kl_mean"] is None for r in scored) == 1  # the empty explanation
    summary = capsys.readouterr().out
    assert f"scored {len(ADVERSARIAL)} rows" in summary and "match_rate" in summary


def test_score_names_the_bad_row(tmp_path, model_dirs, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        json.dumps({"question": "q", "solution": "s", "explanation": "e"})
        + "\n"
        + json.dumps({"question": "q", "solution": "s"})
        + "\n"
    )
    code = main(["score", str(rows), "--teacher", model_dirs[1], "--student", model_dirs[0]])
    assert code == 2
    assert "row 1, column 'explanation'" in capsys.readouterr().err


def test_score_refuses_pickle_weights_and_missing_models(tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"question": "q", "solution": "s", "explanation": "e"}) + "\n")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "pytorch_model.bin").write_bytes(b"not really")
    assert main(["score", str(rows), "--student", str(pickled)]) == 2
    assert "pickle" in capsys.readouterr().err
    assert main(["score", str(rows), "--student", str(tmp_path / "nowhere")]) == 2
    assert "could not load model" in capsys.readouterr().err


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    assert "score" in capsys.readouterr().out
    assert main(["scroe"]) == 2
    err = capsys.readouterr().err
    assert "rlt: error: unknown command 'scroe'" in err and "score" in err  # before: only the list, on stdout
    assert main(["plot", "--help"]) == 0  # before: exit 1
    assert "usage: rlt plot RUN_DIR" in capsys.readouterr().out


def test_the_readme_example_rows_score(tmp_path, model_dirs):
    from pathlib import Path

    rows = Path(__file__).resolve().parents[1] / "examples" / "score_demo.jsonl"
    out = tmp_path / "scored.jsonl"
    assert main(["score", str(rows), "--out", str(out), "--teacher", model_dirs[1], "--student", model_dirs[0]]) == 0
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["matched"] for r in scored] == [True, True, True, False]


@pytest.mark.parametrize("command", ["score", "check-reward", "warmup", "train", "traces", "distill", "eval", "demo"])
def test_every_command_prints_its_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "--" in out
    # before: every command's usage line read "rlt [-h]", without --config or score's ROWS
    first = out.splitlines()[0]
    assert first.startswith(f"usage: rlt {command} ") and "[--config RECIPE.yaml]" in first
    assert ("ROWS.jsonl" in first) == (command == "score")


def test_train_help_puts_rlt_flags_first_and_trl_behind_help_all(capsys):
    """Before: rlt's own flags were buried in 1,393 lines of TRL's."""
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert len(out.splitlines()) < 220  # rlt's own flags grow (the countdown world's knobs); TRL's 193 stay behind
    own, trl = out.index("rlt train options:"), out.index("TRL / transformers options:")
    for flag in ("--config RECIPE.yaml", "--kl_coeffs", "--student", "--holdout", "--offload_student"):
        assert own < out.index(flag, own) < trl, flag
    for flag in ("--output_dir", "--max_steps", "--learning_rate", "--use_vllm"):
        assert out.index(flag) > trl, flag
    assert "--adam_beta2" not in out and "more TRL / transformers flags: rlt train --help-all" in out
    words = " ".join(out.split())  # as wrapped for any terminal width
    assert "over the explanation. (default: [3.0, 0.03])" in words  # before: no defaults shown
    with pytest.raises(SystemExit):
        main(["train", "--help-all"])
    assert "--adam_beta2" in capsys.readouterr().out


def test_a_boolean_flag_given_both_ways_is_refused(capsys):
    """Before: `--teacher_entropy true --no_teacher_entropy` silently took the last."""
    assert main(["score", "rows.jsonl", "--teacher_entropy", "true", "--no_teacher_entropy"]) == 2
    assert "--teacher_entropy and --no_teacher_entropy contradict each other" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("learning_rate: [1.0e-4, 2.0e-4]", "learning_rate: expected a number, got [0.0001, 0.0002]"),
        ("max_steps: ten", "max_steps: expected an integer, got 'ten'"),
        ("kl_coeffs: [3.0, high]", "kl_coeffs: expected a list of a number, got [3.0, 'high']"),
        ("use_peft: sometimes", "use_peft: expected true or false, got 'sometimes'"),
        ("holdout: [1, 2", "not valid YAML"),
    ],
)
def test_recipe_values_of_the_wrong_type_are_usage_errors(tmp_path, capsys, line, message):
    """Before: a YAML list where a number belongs ended in a traceback deep inside training."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"output_dir: {tmp_path / 'out'}\n{line}\n")
    assert main(["train", "--config", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert f"rlt train: error: --config {recipe}: " in err and message in err and "Traceback" not in err


def test_recipe_numbers_read_as_numbers_as_the_flags_do(tmp_path, monkeypatch):
    """Before: `learning_rate: 3e-4` (YAML 1.1 reads an exponent without a dot as a string) was refused with
    "expected a number, got '3e-4'", while `--learning_rate 3e-4` was taken."""
    from trl import ModelConfig

    from rlt.configs import DataArguments, FormatArguments, RewardArguments, RLTGRPOConfig, parse

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"output_dir: {tmp_path}\nlearning_rate: 3e-4\nkl_coeffs: [3, 1E-2]\nbeta: 4e-2\n"
                      "env:\n  RLT_RECIPE_PROBE: 7\n")  # fmt: skip
    monkeypatch.delenv("RLT_RECIPE_PROBE", raising=False)
    types = (ModelConfig, DataArguments, FormatArguments, RewardArguments, RLTGRPOConfig)
    *_, reward, config = parse(types, ["--config", str(recipe), "--max_steps", "2"], "train")
    assert config.learning_rate == 3e-4 and reward.kl_coeffs == [3.0, 0.01] and config.beta == 0.04
    assert config.max_steps == 2
    assert __import__("os").environ["RLT_RECIPE_PROBE"] == "7"  # TRL's env: block still sets the variables
    *_, config = parse(types, ["--config", str(recipe), "--learning_rate", "1e-5"], "train")
    assert config.learning_rate == 1e-5  # flags still win


@pytest.mark.parametrize("command", ["train", "warmup", "distill", "coldstart"])
def test_training_without_an_output_dir_is_a_one_line_usage_error(command, capsys):
    """Before: `TypeError: expected str, bytes or os.PathLike object, not NoneType` from Path(None)."""
    assert main([command]) == 2
    err = capsys.readouterr().err
    assert f"rlt {command}: error: --output_dir is needed" in err and "Traceback" not in err


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_use_vllm_without_vllm_is_a_usage_error(tmp_path, capsys):
    """Before: TRL's ImportError traceback after the models were loaded."""
    assert main(["train", "--use_vllm", "true", "--output_dir", str(tmp_path / "out")]) == 2
    assert "--use_vllm true needs vLLM" in capsys.readouterr().err
