import json

import pytest

from benchmarks.verify_scored import max_deviation
from rlt.cli import main
from rlt.models import save_tiny, tiny_model
from rlt.reward import RewardConfig
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
