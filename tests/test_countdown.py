"""Countdown: the seeded generator, the exact checker, the `countdown` dataset and grading of student answers."""

import re
from fractions import Fraction

import pytest

from rlt.configs import DataArguments
from rlt.data import DataError, to_problems
from rlt.data.countdown import DATASET_SIZE, MAX_NUMBER, MAX_TARGET, Countdown, generate, parse_spec
from rlt.measure.evaluate import grade

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
    assert parse_spec("countdown:10") == (10, 10)  # refused by the generator, not read as a Hub id
    with pytest.raises(ValueError, match="2 <= low <= high <= 8"):
        generate(1, (4, 3))
    with pytest.raises(ValueError, match="2 <= low <= high <= 8"):
        DataArguments(dataset="countdown:10").load()


@pytest.mark.parametrize(
    "answer",
    ["(7 + 3) * 5", "5*(3+7)", "The answer is (7 + 3) * 5.", "(7 + 3) * 5 = 50", "(7+3) \\times 5", "(7 + 3) × 5",
     "$(7 + 3) \\cdot 5$", "So the expression is 5 * (7 + 3)", "\\boxed{(7 + 3) \\times 5}",
     "The answer is $\\boxed{5 \\cdot {(3 + 7)}}$.", "So (7 + 3) * 5 = 50.", "50 = (7 + 3) * 5", "**Answer:** (7+3)*5",
     "The final expression is: (7 + 3) * 5", "\\[(7 + 3) \\cdot 5\\]", "(7 + 3) ⋅ 5", "`(7 + 3) * 5`;",
     "(7 + 3) * 5, which equals 50.", "(7 + 3)\u00a0*\u00a05",
     "7 + 3 * 5 is 22, so instead: (7 + 3) * 5"],
)  # fmt: skip
def test_the_checker_accepts_a_right_answer_in_any_usual_notation(answer):
    assert PROBLEM.check(answer) == (True, "correct")


@pytest.mark.parametrize(
    "answer",
    ["- (7 + 3) * 5", "* (7 + 3) * 5", "• (7 + 3) * 5", "+ (7 + 3) * 5", "  - 5 * (7 + 3)", "1) (7 + 3) * 5",
     "(1) (7 + 3) * 5", "5) (7 + 3) * 5", "1. (7 + 3) * 5", "Step 2: (7 + 3) * 5", "(Answer: (7 + 3) * 5)",
     "(answer: 5 * (7 + 3)).", "(Answer: \\boxed{(7 + 3) \\times 5})",
     "Steps:\n- 7 + 3 = 10\n- 10 * 5 = 50\n- (7 + 3) * 5", "1) 7 + 3 = 10\n2) 10 * 5 = 50\n3) (7 + 3) * 5"],
)  # fmt: skip
def test_the_checker_accepts_a_right_answer_in_a_list_or_a_closing_parenthetical(answer):
    assert PROBLEM.check(answer) == (True, "correct")


@pytest.mark.parametrize(
    ("numbers", "target", "answer", "correct"),
    [
        ((1, 2, 3), 6, "1 + 2 + 3", True),
        ((1, 2, 3), 6, "1) 1 + 2 + 3", True),
        ((1, 2, 3), 6, "1) 2 + 3", False),  # the marker is no number of the expression: 1 is not used
        ((1, 2, 3), 6, "1) 2 * 3", False),  # 2 * 3 makes 6, but without the 1
        ((1, 2, 3), 6, "(1) 2 * 3", False),
        ((1, 2, 3), 6, "3) 1 * 2", False),
        ((1, 2, 3), 6, "- 1 + 2 + 3", True),  # a bullet
        ((1, 2, 3), 6, "-1 + 2 + 3", False),  # unary minus (makes 4): no bullet, not a countdown answer
        ((1, 2, 3), 4, "- 1 + 2 + 3", False),  # a bullet, never a minus sign that would make 4
        ((1, 2, 3), 6, "x - (1 + 2) * 3", False),  # a minus inside the line is no bullet
        ((3, 5, 7), 50, "(Answer: 7 + 3) * 5", False),  # a parenthesis closed inside the expression is not a wrapper
        ((3, 5, 7), 50, "(Answer: (7 + 3) * 5) * 1", False),
    ],
)
def test_a_list_marker_is_stripped_only_where_it_is_no_part_of_the_expression(numbers, target, answer, correct):
    assert Countdown(numbers, target).check(answer)[0] is correct


# A row's answer in each notation a student may give it; n is one of the row's numbers (a marker that looks like one).
WRAPPINGS = ["- {e}", "* {e}", "• {e}", "+ {e}", "{n}) {e}", "({n}) {e}", "{n}. {e}", "Step {n}: {e}", "(Answer: {e})",
             "(Answer: {e}).", "Working:\n- {n} is given\n- {e}"]  # fmt: skip


def _value(expression: str) -> Fraction:
    """The test's own exact arithmetic on a generated expression (never a student's text)."""
    return eval(re.sub(r"\d+", lambda m: f"Fraction({m.group()})", expression))


def _wrong_variants(expression: str, target: int) -> list[str]:
    """The expression with one number changed (wrong numbers), and with the first operator that can be flipped to
    a different value flipped (wrong value or division by zero)."""
    changed = re.sub(r"\d+", lambda m: str(int(m.group()) + 1), expression, count=1)
    for operator in re.finditer(r" ([-+*/]) ", expression):
        for other in "+-*/".replace(operator.group(1), ""):
            flipped = f"{expression[: operator.start(1)]}{other}{expression[operator.end(1) :]}"
            try:
                if _value(flipped) != target:
                    return [changed, flipped]
            except ZeroDivisionError:
                return [changed, flipped]
    return [changed]


@pytest.mark.parametrize("sizes", [(3, 4), (5, 5)])
def test_every_notation_of_a_generated_answer_is_accepted_and_of_a_wrong_one_refused(sizes):
    flipped = 0
    for row in generate(300, sizes):
        problem, n = Countdown(tuple(row["numbers"]), row["target"]), row["numbers"][0]
        for wrapping in WRAPPINGS:
            assert problem.check(wrapping.format(e=row["answer"], n=n)) == (True, "correct"), (wrapping, row)
        wrong = _wrong_variants(row["answer"], row["target"])
        flipped += len(wrong) == 2
        for expression in wrong:
            assert not problem.check(expression)[0], (expression, row)
            for wrapping in WRAPPINGS:
                assert not problem.check(wrapping.format(e=expression, n=n))[0], (wrapping, expression, row)
    assert flipped > 250  # nearly every row has an operator whose flip changes the value


def test_the_checker_evaluates_exactly():
    assert Countdown((1, 3, 4, 6), 24).check("6 / (1 - 3 / 4)") == (True, "correct")  # 6 / 0.25: exact fractions
    assert Countdown((2, 3, 4), 2).check("4 / 3 * 2") == (False, "wrong value")  # 8/3 is not 2, nor floored to it


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        ("7 + 3 * 5", "wrong value"),
        ("(7 + 3) * 5 = 49", "correct"),  # the stated value is not what is checked: the expression is
        ("(7 + 3) * 5 or 7 * 5 + 3", "wrong value"),  # only the last try counts: listing tries earns nothing
        ("\\frac{7 * 5}{3}", "wrong value"),
        ("(7 + 3) * 5 * 1", "wrong numbers"),  # a number not given
        ("(7 + 7) * 5", "wrong numbers"),  # a number used twice, another not at all
        ("10 * 5", "wrong numbers"),  # intermediate results are not numbers it was given
        ("7 * 5", "wrong numbers"),  # a number left out
        ("(3 - 3) + 7 / (5 - 5)", "wrong numbers"),
    ],
)
def test_the_checker_rejects_wrong_answers(answer, verdict):
    assert PROBLEM.check(answer)[1] == verdict


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        ("7 + 3 = 10, 10 * 5 = 50", "correct"),  # the steps, as the game is played on television
        ("Target 50.\n7 + 3 = 10, left: 5, 10.\n10 * 5 = 50, the target.", "correct"),  # a worked solution's lines
        ("5 * 7 = 35, 35 - 3 = 32. No. 7 + 3 = 10, 10 * 5 = 50.", "correct"),  # the last steps count
        ("7 + 3 = 10, 10 * 5 = 50. No: 7 * 5 = 35, 35 + 3 = 38.", "wrong value"),  # ... and only they
        ("7 + 3 = 10, 10 * 5 = 51", "false step"),  # every statement must be exact, not only the last
        ("7 + 3 = 11, 11 * 5 = 55", "false step"),
        ("7 + 3 = 10, 10 * 5 = 50, so 7 + 3 * 5", "wrong value"),  # an expression after the steps answers
        ("(7 + 3) * 5 is wrong: 7 * 5 = 35, 35 + 3 = 38", "wrong value"),  # steps after an expression answer
        ("7 + 3 = 10", "wrong numbers"),  # 5 left unused
        ("7 + 3 = 10, 10 * 3 = 30", "wrong numbers"),  # 3 used twice: no derivation, so no step answer
        ("7 * 5 = 35, 10 + 5 = 15", "wrong numbers"),  # 10 was never made
    ],
)
def test_the_checker_reads_an_answer_given_as_its_steps(answer, verdict):
    assert PROBLEM.check(answer) == (verdict == "correct", verdict)


def test_steps_through_zero_are_a_wrong_answer_not_an_error():
    assert Countdown((5, 5, 3), 1).check("5 - 5 = 0, 3 / 0 = 1") == (False, "false step")


def test_division_by_zero_is_a_wrong_answer_not_an_error():
    assert Countdown((5, 5, 3), 1).check("3 / (5 - 5)") == (False, "division by zero")


@pytest.mark.parametrize(
    "answer",
    [None, "", "   ", "fifty", "7 + 3) * 5", "(7 + 3) ** 5", "-3 + 7 * 5", "(7 + 3) * -5", "-(7 + 3) * 5",
     "7 // 3 + 5",
     "(" * 250 + "7" + ")" * 250, "7 + " * 1000 + "3"],  # nesting past the parser's limit; over the length cap
)  # fmt: skip
def test_the_checker_calls_malformed_what_is_not_arithmetic_on_integers(answer):
    assert PROBLEM.check(answer) == (False, "malformed")


@pytest.mark.parametrize(
    "answer",
    ["(7 + 3) *", "7.0 * 5 + 3", "7 + 3 * 5j", "'7' + '3' * 5", "True + 5 * 7", "x = 7 + 3", "[7, 3, 5]", "7 % 3 + 5",
     "0x7 * 5 + 3", "(" * 140 + "(7 + 3) * 5 + 0" + ")" * 140, "(7 + 3) * 5" + " + 3 - 3" * 150],
)  # fmt: skip
def test_the_checker_never_accepts_what_is_not_the_answer(answer):
    assert not PROBLEM.check(answer)[0]


@pytest.mark.parametrize(
    "answer",
    ["__import__('os').system('touch {marker}')", "open('{marker}', 'w').write('x')",
     "(lambda: __import__('os').system('touch {marker}'))()", "print(7) or 3 * 5 + 7", "().__class__.__bases__[0]",
     "exec(\"open('{marker}', 'w')\")", "7 + 3 if open('{marker}', 'w') else 5"],
)  # fmt: skip
def test_the_checker_never_runs_the_text_it_checks(answer, tmp_path):
    marker = tmp_path / "ran"
    assert not PROBLEM.check(answer.format(marker=marker))[0]
    assert not marker.exists()


def test_countdown_is_a_dataset_like_champ():
    train, held_out, skipped = DataArguments(dataset="countdown", holdout=100).load()
    assert (len(train), len(held_out), skipped) == (DATASET_SIZE - 100, 100, 0)

    def key(p):
        return tuple(sorted(p.countdown.numbers)), p.countdown.target

    assert not {key(p) for p in train} & {key(p) for p in held_out}
    problem = train[0]
    assert problem.countdown.check(problem.answer) == (True, "correct")
    # the paper's framing: the teacher is shown the worked solution, the search trace is what it learns to write
    assert problem.solution.startswith("Target ") and problem.reasoning_trace.startswith("Make ")
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
    with pytest.raises(DataError, match=r"row 0, column 'solution'"):
        to_problems([{k: v for k, v in good[0].items() if k != "solution"}], "countdown")
    # TinyZero's Countdown-Tasks rows hold numbers and target only: the answer and worked steps are solved for
    (problem,), _ = to_problems([{"nums": [4, 9, 2, 8], "target": 33}], "countdown")
    assert problem.countdown == Countdown((4, 9, 2, 8), 33) and problem.countdown.check(problem.answer)[0]
    assert problem.question == problem.countdown.question and problem.solution.endswith("= 33.")
    with pytest.raises(DataError, match=r"column 'answer': no expression makes 100 from \[1, 1, 1\]"):
        to_problems([{"nums": [1, 1, 1], "target": 100}], "countdown")


def test_a_student_s_countdown_answer_is_graded_by_the_checker():
    def answered(solution: str) -> str:
        return f"<|begin_of_thought|>\n\n7 + 3 = 10.\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n{solution}\n\n"

    stated = "The answer is (7 + 3) * 5."
    assert grade(answered(stated), "(7 + 3) * 5", PROBLEM) == (True, "countdown", stated)
    assert grade(answered("\\boxed{5 * (7 + 3)}"), "(7 + 3) * 5", PROBLEM)[:2] == (True, "countdown")
    assert grade(answered("(7 + 3) * 6"), "(7 + 3) * 5", PROBLEM)[:2] == (False, "countdown")
    # a math-trained student boxes the value: the expression before it is still the answer
    assert grade(answered("(7 + 3) * 5 = \\boxed{50}"), "(7 + 3) * 5", PROBLEM)[:2] == (True, "countdown")
    assert grade("<|begin_of_thought|>\n\n(7 + 3) * 5", "(7 + 3) * 5", PROBLEM)[:2] == (False, "countdown")  # no answer
