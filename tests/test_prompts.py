"""System prompts: set by flag (text or @FILE) or by the dataset (Stratos' `system` column), and read by every text
the teacher and the student see."""

import json
from dataclasses import replace

import pytest

from rlt.cli import main
from rlt.configs import FormatArguments
from rlt.data import DataError, to_problems
from rlt.reward.formats import STRATOS, student_messages, student_prompt, student_text, teacher_prompt
from rlt.testing import save_tiny, tiny_tokenizer

STUDENT = "Answer as the model trained on these traces was taught to answer."
TEACHER = "Explain the given solution to a student."
THOUGHT = (
    "<|begin_of_thought|>\n\nthink hard\n\n<|end_of_thought|>\n\n"
    "<|begin_of_solution|>\n\n$\\boxed{7}$\n\n<|end_of_solution|>"
)


def stratos_row(system: str | None) -> dict:
    row = {"conversations": [{"from": "user", "value": "What is 3+4?"}, {"from": "assistant", "value": THOUGHT}]}
    return row if system is None else {"system": system, **row}


def test_every_text_reads_the_style_s_prompts():
    tokenizer = tiny_tokenizer()
    style = replace(STRATOS, teacher_system=TEACHER, student_system=STUDENT)
    for text in (student_text(tokenizer, "Q", "E", "S", style), student_prompt(tokenizer, "Q", style)):
        assert STUDENT in text and "reasoning carefully" not in text
    assert student_messages("Q", "E", "S", style)[0] == {"role": "system", "content": STUDENT}
    prompt = teacher_prompt(tokenizer, "Q", "S", style)
    assert TEACHER in prompt and "accurate solution" not in prompt
    assert STRATOS.identity == "stratos" and style.identity.startswith("stratos+prompts:")
    assert replace(style, student_system="other").identity != style.identity


def test_the_stratos_adapter_takes_the_student_prompt_from_the_system_column(tmp_path):
    (problem,), _ = to_problems([stratos_row("  Think, then answer with <|begin_of_thought|> tags.  ")], "stratos")
    assert problem.system == "Think, then answer with <|begin_of_thought|> tags."
    assert FormatArguments().tag_style([problem]).student_system == problem.system
    (plain,), _ = to_problems([stratos_row(None)], "stratos")
    assert plain.system is None and FormatArguments().tag_style([plain]).student_system is None
    # a flag wins over the dataset; @FILE reads the prompt from a file
    (tmp_path / "prompt.txt").write_text(STUDENT)
    assert FormatArguments(student_system_prompt=f"@{tmp_path / 'prompt.txt'}").tag_style([problem]).student_system \
        == STUDENT  # fmt: skip
    problems, _ = to_problems([stratos_row("one"), stratos_row("two")], "stratos")
    with pytest.raises(DataError, match="2 different system prompts; choose one with --student_system_prompt"):
        FormatArguments().tag_style(problems)
    with pytest.raises(ValueError, match=r"--teacher_system_prompt @.*missing.txt: cannot read"):
        FormatArguments(teacher_system_prompt=f"@{tmp_path / 'missing.txt'}").tag_style()


def test_traces_of_a_stratos_dataset_teach_under_its_own_system_prompt(tmp_path):
    save_tiny(tmp_path / "student", seed=0)
    save_tiny(tmp_path / "teacher", seed=1)
    (tmp_path / "rows.jsonl").write_text(json.dumps(stratos_row(STUDENT)) + "\n")
    out = tmp_path / "traces.jsonl"
    assert main(["traces", "--teacher", str(tmp_path / "teacher"), "--student", str(tmp_path / "student"),
                 "--dataset", str(tmp_path / "rows.jsonl"), "--adapter", "stratos", "--out", str(out),
                 "--max_new_tokens", "6", "--device", "cpu"]) == 0  # fmt: skip
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["messages"][0] == {"role": "system", "content": STUDENT}
    record = json.loads(out.with_name("traces.jsonl.provenance.json").read_text())
    assert record["settings"]["style"].startswith("stratos+prompts:")
