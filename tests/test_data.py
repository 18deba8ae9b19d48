import json

import pytest

from rlt.data import DataError, Problem, frame, load_champ, load_problems, read_rows, split_problems, to_problems


def test_gsm8k_real_rows(gsm8k_test):
    problems, skipped = load_problems(str(gsm8k_test), adapter="gsm8k", limit=50)
    assert skipped == 0 and len(problems) == 50
    first = problems[0]
    assert first.question.startswith("Janet")
    assert first.answer == "18"
    assert "<<" not in first.solution and ">>" not in first.solution
    assert first.solution.endswith("The answer is 18.")
    assert all(p.answer.lstrip("-").replace(".", "").isdigit() for p in problems)


def test_gsm8k_strips_calculator_annotations_and_commas():
    row = {"question": "q?", "answer": "Half is 1000/2=<<1000/2=500>>500.\n#### 1,500"}
    (problem,), _ = to_problems([row], "gsm8k")
    assert problem.solution == "Half is 1000/2=500.\nThe answer is 1500."
    assert problem.answer == "1500"


def test_champ_from_package():
    rows = load_champ()
    assert len(rows) == 270
    problems, skipped = to_problems(rows, "champ")
    assert skipped == 0 and len(problems) == 270
    p = problems[0]
    assert p.question.startswith("Let a string consist of digit 1, 2, 3")
    assert "x_n, y_n, z_n" in p.solution and "\n" in p.solution
    assert p.answer
    assert load_problems("champ", limit=5)[0][0].question == p.question


def test_math_boxed_with_nested_braces():
    row = {"problem": "Simplify.", "solution": "So we get $\\boxed{\\frac{1}{2}}$."}
    (problem,), _ = to_problems([row], "math")
    assert problem.answer == "\\frac{1}{2}"
    with pytest.raises(DataError, match=r"row 0, column 'solution': no \\boxed"):
        to_problems([{"problem": "p", "solution": "no box"}], "math")


def test_stratos_conversations():
    value = (
        "<|begin_of_thought|>\n\nthink hard\n\n<|end_of_thought|>\n\n"
        "<|begin_of_solution|>\n\n$\\boxed{7}$\n\n<|end_of_solution|>"
    )
    row = {"conversations": [{"from": "user", "value": "What is 3+4?"}, {"from": "assistant", "value": value}]}
    (problem,), _ = to_problems([row], "stratos")
    assert (problem.question, problem.reasoning_trace, problem.solution, problem.answer) == (
        "What is 3+4?",
        "think hard",
        "$\\boxed{7}$",
        "7",
    )
    bad = {"conversations": [{"from": "assistant", "value": value}, {"from": "user", "value": "q"}]}
    with pytest.raises(DataError, match="row 0, column 'conversations': turn 0 must come from 'user'"):
        to_problems([bad], "stratos")


def test_generic_columns_are_configurable():
    rows = [{"prompt": "q1", "worked": "s1", "final": "1", "trace": "long thought"}]
    (p,), _ = to_problems(
        rows, "generic", question="prompt", solution="worked", answer="final", reasoning_trace="trace"
    )
    assert (p.question, p.solution, p.answer, p.reasoning_trace) == ("q1", "s1", "1", "long thought")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"solution": "s"}, "row 1, column 'question': missing"),
        ({"question": "  ", "solution": "s"}, "row 1, column 'question': empty"),
        ({"question": 3, "solution": "s"}, "row 1, column 'question': expected a string, got int"),
        ({"question": "q", "solution": "x <|end_of_solution|>"}, "row 1, column 'solution': contains the format tag"),
    ],
)
def test_bad_rows_name_row_and_column(row, message):
    rows = [{"question": "fine", "solution": "fine"}, row]
    with pytest.raises(DataError, match=message.replace("|", r"\|")):
        to_problems(rows)
    problems, skipped = to_problems(rows, skip_invalid=True)
    assert (len(problems), skipped) == (1, 1)


def test_corrupt_jsonl_line_is_named(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"question": "q", "solution": "s"}\n{"question": oops}\n')
    with pytest.raises(DataError, match=r"rows.jsonl:2: not valid JSON"):
        read_rows(str(path))


def test_skip_invalid_also_skips_and_counts_unparsable_lines(tmp_path):
    path = tmp_path / "rows.jsonl"
    good = ['{"question": "q", "solution": "s"}', '{"question": "q2", "solution": "s2"}']
    path.write_text("\n".join([good[0], '{"question": oops}', "[1]", good[1]]) + "\n")
    problems, skipped = load_problems(str(path), skip_invalid=True)  # before: DataError on line 2 all the same
    assert [p.question for p in problems] == ["q", "q2"] and skipped == 2


def test_numeric_answers_are_read_as_text(tmp_path):
    rows = [{"question": "q", "solution": "s", "answer": 5}, {"question": "q", "solution": "s", "answer": 2.5},
            {"question": "q", "solution": "s", "answer": 4.0}]  # fmt: skip
    problems, skipped = to_problems(rows)  # before: "expected a string, got int"
    assert [p.answer for p in problems] == ["5", "2.5", "4"] and skipped == 0
    with pytest.raises(DataError, match="column 'answer': expected a string, got bool"):
        to_problems([{"question": "q", "solution": "s", "answer": True}])
    with pytest.raises(DataError, match="column 'question': expected a string, got int"):
        to_problems([{"question": 5, "solution": "s"}])  # a number is no question
    import pandas as pd

    pd.DataFrame({"question": ["q1", "q2"], "solution": ["s1", "s2"], "answer": [3, 12]}).to_csv(tmp_path / "n.csv")
    problems, _ = load_problems(str(tmp_path / "n.csv"))
    assert [p.answer for p in problems] == ["3", "12"]


def test_parquet_and_csv(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"question": ["q1", "q2"], "solution": ["s1", "s2"]})
    frame.to_parquet(tmp_path / "d.parquet")
    frame.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "d.json").write_text(json.dumps(frame.to_dict(orient="records")))
    for name in ("d.parquet", "d.csv", "d.json"):
        problems, _ = load_problems(str(tmp_path / name))
        assert [p.question for p in problems] == ["q1", "q2"]


def test_unknown_adapter_and_split():
    with pytest.raises(ValueError, match="unknown adapter 'nope'"):
        to_problems([], "nope")
    problems, _ = load_problems("champ")
    train, held = split_problems(problems, 20)
    assert len(train) == 250 and len(held) == 20 and held[-1] == problems[-1]


def test_framing_answer_auto_and_solution():
    worked = Problem("Q?", "Step one.\nSo 4.", answer="4")
    traced = Problem("Q?", "So 4.", answer="4", reasoning_trace="Long thought.")
    no_answer = Problem("Q?", "Only a solution.")
    answer = frame([worked, traced], "answer")
    assert (answer[0].solution, answer[0].reasoning_trace) == ("The answer is 4.", "Step one.\nSo 4.")
    assert (answer[1].solution, answer[1].reasoning_trace) == ("The answer is 4.", "Long thought.")
    auto = frame([worked, traced, no_answer])  # answer only where there is an answer and no trace
    assert [p.solution for p in auto] == ["The answer is 4.", "So 4.", "Only a solution."]
    assert frame([worked], "solution") == [worked]
    with pytest.raises(DataError, match="row 1: no final answer"):
        frame([worked, no_answer], "answer")
    with pytest.raises(ValueError, match="framing must be one of"):
        frame([worked], "rationale")


def test_data_arguments_frame_champ_for_a_warm_up_that_is_not_a_copy_task():
    from rlt.configs import DataArguments

    train, held_out, _ = DataArguments(max_solution_chars=400, holdout=120).load()
    raw = load_problems("champ")[0]
    short = [p for p in raw if len(p.solution) <= 400]
    assert (len(train), len(held_out)) == (81, 61) and len(short) == 142  # the CPU recipes' split
    for framed, original in zip(train + held_out, short, strict=True):
        assert framed.solution == f"The answer is {original.answer}."
        assert framed.reasoning_trace == original.solution  # the worked steps become the explanation target


def test_filters_never_move_a_problem_across_the_split():
    """Before, the last N were held out after the length filter: an eval with `--max_solution_chars 300 --holdout 64`
    read 26 questions that a `--max_solution_chars 400 --holdout 64` run trained on."""
    from rlt.configs import DataArguments

    raw = load_problems("champ")[0]
    trained = {p.reasoning_trace for p in DataArguments(max_solution_chars=400, holdout=64).load()[0]}
    for args in (
        dict(holdout=20),
        dict(holdout=64),
        dict(holdout=64, max_problems=10),
        dict(holdout=30, max_solution_chars=300),
        dict(holdout=64, max_solution_chars=300),  # before: 26 of its 64 were trained on
    ):
        held_out = DataArguments(**args).load()[1]
        assert held_out and not trained & {p.reasoning_trace for p in held_out}, args
    # the held-out part is the last N rows as read, whatever the filters keep of it
    assert [p.reasoning_trace for p in DataArguments(holdout=20).load()[1]] == [p.solution for p in raw[-20:]]
    capped = DataArguments(holdout=64, max_problems=10).load()
    assert len(capped[0]) == len(capped[1]) == 10 and capped[1][0].reasoning_trace == raw[-64].solution
