"""Countdown: the seeded generator, the exact checker, the `countdown` dataset and grading of student answers."""

import re
from fractions import Fraction

import pytest

from rlt.configs import DataArguments
from rlt.countdown import DATASET_SIZE, MAX_NUMBER, MAX_TARGET, Countdown, generate, parse_spec
from rlt.data import DataError, to_problems
from rlt.evaluate import grade

PROBLEM = Countdown((3, 5, 7), 50)


def test_the_generator_is_seeded():
    assert generate(40, seed=0) == generate(40, seed=0)
    assert generate(40, seed=0) != generate(40, seed=1)
    assert generate(40, (3, 4), seed=0)[:10] == generate(10, (3, 4), seed=0)  # a prefix does not depend on count


@pytest.mark.parametrize("sizes", [(3, 4), (5, 5), (2, 6)])
def test_every_generated_solution_is_valid_and_the_difficulty_is_the_count_of_numbers(sizes):
    rows = generate(300, sizes, seed=3)
    counts = {len(row["numbers"]) for row in rows}
    assert counts == set(range(sizes[0], sizes[1] + 1))  # every size asked for, no other
    assert len({(tuple(sorted(r["numbers"])), r["target"]) for r in rows}) == len(rows)  # no problem twice
    for row in rows:
        problem = Countdown(tuple(row["numbers"]), row["target"])
        assert problem.check(row["answer"]) == (True, "correct")
        assert all(1 <= n <= MAX_NUMBER for n in row["numbers"]) and 1 <= row["target"] <= MAX_TARGET
        assert row["target"] not in row["numbers"] and row["question"] == problem.question
        # the worked solution: one true operation per line on the numbers left, ending at the target
        steps = re.findall(r"^(\d+) ([-+*/]) (\d+) = (\d+)", row["solution"], re.M)
        assert len(steps) == len(row["numbers"]) - 1
        left = list(row["numbers"])
        for a, op, b, value in steps:
            a, b, value = int(a), int(b), int(value)
            left.remove(a), left.remove(b)
            assert value > 0 and Fraction(eval(f"{a} {op} {b}")) == value  # the test's own two-number arithmetic
            left.append(value)
        assert left == [row["target"]]
        assert row["solution"].endswith(f"So {row['answer']} = {row['target']}.")


def test_dataset_names_choose_the_difficulty():
    assert parse_spec("countdown") == (3, 4)
    assert parse_spec("countdown:5") == (5, 5)
    assert parse_spec("countdown:3-6") == (3, 6)
    assert parse_spec("countdown.jsonl") is None and parse_spec("champ") is None
    with pytest.raises(ValueError, match="2 <= low <= high <= 8"):
        generate(1, (4, 3))


@pytest.mark.parametrize(
    "answer",
    ["(7 + 3) * 5", "5*(3+7)", "The answer is (7 + 3) * 5.", "(7 + 3) * 5 = 50", "(7+3) \\times 5", "(7 + 3) × 5",
     "$(7 + 3) \\cdot 5$", "So the expression is 5 * (7 + 3)", "\\boxed{(7 + 3) \\times 5}",
     "The answer is $\\boxed{5 \\cdot {(3 + 7)}}$."],
)  # fmt: skip
def test_the_checker_accepts_a_right_answer_in_any_usual_notation(answer):
    assert PROBLEM.check(answer) == (True, "correct")


def test_the_checker_evaluates_exactly():
    assert Countdown((1, 3, 4, 6), 24).check("6 / (1 - 3 / 4)") == (True, "correct")  # 6 / 0.25: exact fractions
    assert Countdown((2, 3, 4), 2).check("4 / 3 * 2") == (False, "wrong value")  # 8/3 is not 2, nor floored to it


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        ("7 + 3 * 5", "wrong value"),
        ("(7 + 3) * 5 = 49", "correct"),  # the stated value is not what is checked: the expression is
        ("(7 + 3) * 5 * 1", "wrong numbers"),  # a number not given
        ("(7 + 7) * 5", "wrong numbers"),  # a number used twice, another not at all
        ("10 * 5", "wrong numbers"),  # intermediate results are not numbers it was given
        ("7 * 5", "wrong numbers"),  # a number left out
        ("(3 - 3) + 7 / (5 - 5)", "wrong numbers"),
    ],
)
def test_the_checker_rejects_wrong_answers(answer, verdict):
    assert PROBLEM.check(answer)[1] == verdict


def test_division_by_zero_is_a_wrong_answer_not_an_error():
    assert Countdown((5, 5, 3), 1).check("3 / (5 - 5)") == (False, "division by zero")


@pytest.mark.parametrize(
    "answer",
    [None, "", "   ", "fifty", "(7 + 3) *", "7 + 3) * 5", "(7 + 3) ** 5", "-3 + 7 * 5", "7.0 * 5 + 3", "7 + 3 * 5j",
     "'7' + '3'", "True + 5 * 7", "x = 7 + 3", "[7, 3, 5]", "7 // 3 + 5", "7 % 3 + 5", "(" * 500 + "7" + ")" * 500,
     "7 + " * 1000 + "3"],
)  # fmt: skip
def test_the_checker_calls_malformed_what_is_not_arithmetic_on_integers(answer):
    assert PROBLEM.check(answer) == (False, "malformed")


@pytest.mark.parametrize(
    "answer",
    ["__import__('os').system('touch {marker}')", "open('{marker}', 'w').write('x')",
     "(lambda: __import__('os').system('touch {marker}'))()", "print(7) or 3 * 5 + 7", "().__class__.__bases__[0]",
     "exec(\"open('{marker}', 'w')\")", "7 + 3 if open('{marker}', 'w') else 5"],
)  # fmt: skip
def test_the_checker_never_runs_the_text_it_checks(answer, tmp_path):
    marker = tmp_path / "ran"
    assert PROBLEM.check(answer.format(marker=marker)) == (False, "malformed")
    assert not marker.exists()


def test_countdown_is_a_dataset_like_champ():
    train, held_out, skipped = DataArguments(dataset="countdown", holdout=100).load()
    assert (len(train), len(held_out), skipped) == (DATASET_SIZE - 100, 100, 0)
    assert not {p.countdown for p in train} & {p.countdown for p in held_out}
    problem = train[0]
    assert problem.countdown.check(problem.answer) == (True, "correct")
    # the answer framing: the teacher is shown the answer, the worked solution is what an explanation should teach
    assert problem.solution == f"The answer is {problem.answer}." and problem.reasoning_trace.startswith("Target ")
    hard, _, _ = DataArguments(dataset="countdown:6", max_problems=5).load()
    assert {len(p.countdown.numbers) for p in hard} == {6}


def test_countdown_rows_from_a_file_are_checked_and_bad_ones_named():
    good = generate(2, seed=9)
    problems, _ = to_problems(good, "countdown")
    assert [p.countdown.target for p in problems] == [r["target"] for r in good]
    with pytest.raises(DataError, match=r"row 1, column 'answer'.*does not make"):
        to_problems([good[0], {**good[1], "answer": "1 + 1"}], "countdown")
    with pytest.raises(DataError, match=r"row 0, column 'numbers'"):
        to_problems([{**good[0], "numbers": [1, "2"]}], "countdown")
    with pytest.raises(DataError, match=r"row 0, column 'target'"):
        to_problems([{**good[0], "target": "5"}], "countdown")
    tinyzero = {"nums": good[0]["numbers"], "target": good[0]["target"], "answer": good[0]["answer"],
                "solution": "worked"}  # fmt: skip
    (problem,), _ = to_problems([tinyzero], "countdown")
    assert problem.question == Countdown(tuple(good[0]["numbers"]), good[0]["target"]).question


def test_a_student_s_countdown_answer_is_graded_by_the_checker():
    def answered(solution: str) -> str:
        return f"<|begin_of_thought|>\n\n7 + 3 = 10.\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n{solution}\n\n"

    stated = "The answer is (7 + 3) * 5."
    assert grade(answered(stated), "(7 + 3) * 5", PROBLEM) == (True, "countdown", stated)
    assert grade(answered("\\boxed{5 * (7 + 3)}"), "(7 + 3) * 5", PROBLEM)[:2] == (True, "countdown")
    assert grade(answered("(7 + 3) * 6"), "(7 + 3) * 5", PROBLEM)[:2] == (False, "countdown")
    assert grade("<|begin_of_thought|>\n\n(7 + 3) * 5", "(7 + 3) * 5", PROBLEM)[:2] == (False, "countdown")  # no answer
