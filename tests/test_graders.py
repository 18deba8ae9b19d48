"""The text grader of free-form answers math-verify cannot parse (CHAMP's "No", "Yes", "No such values"): a yes/no
answer is right only when the yes or no is the whole of its first clause."""

import pytest

from rlt.measure.evaluate import check_answer, grade


@pytest.mark.parametrize(
    "prediction",
    ["No", "no", "NO", "No.", "  no  ", "**No**", "\\boxed{No}", "$\\boxed{\\text{No}}$", "\\text{No}", "`No`", "(No)",
     "No, because the sum is odd.", "No; there is none.", "No: the sum is odd", "No!", "No. The sum is odd.",
     "No — the sum is odd", "No - the sum is odd", "No (the sum is odd)", "No\n\nThe sum is odd.", '"No"',
     "The answer is no.", "The answer is: No", "**Answer:** No", "Final answer: no"],
)  # fmt: skip
def test_a_no_in_any_usual_notation_matches_a_no(prediction):
    assert check_answer(prediction, "No") == (True, "text")
    assert check_answer(prediction.replace("No", "Yes").replace("no", "yes").replace("NO", "YES"), "Yes") == (
        True, "text")  # fmt: skip


@pytest.mark.parametrize(
    "prediction",
    ["No idea", "Nobody knows", "Not sure", "No no yes", "Nope", "None", "No?", "No such values", "I think no",
     "Now 3", "Yes", "Yes, no", "", None],
)  # fmt: skip
def test_only_a_whole_first_clause_no_matches_a_no(prediction):
    assert check_answer(prediction, "No") == (False, "text")


@pytest.mark.parametrize(
    "prediction",
    ["Yes and no", "Yesterday", "Yes or no", "Yes it could be", "Yes?", "No", "No, yes", "Maybe yes", "", None],
)  # fmt: skip
def test_only_a_whole_first_clause_yes_matches_a_yes(prediction):
    assert check_answer(prediction, "Yes") == (False, "text")


@pytest.mark.parametrize("gold", ["No", "no", "No.", "**No**", "\\boxed{No}", "$\\text{No}$"])
def test_a_gold_no_is_read_in_any_usual_notation(gold):
    assert check_answer("No, there is none.", gold) == (True, "text")
    assert check_answer("No idea", gold) == (False, "text")


def test_a_gold_that_says_more_than_yes_or_no_needs_that_more():
    # math-verify reads the sequence in this gold: the value is graded, a bare "Yes" states none, a "No" contradicts it
    sequence = "Yes, and the sequence is 1/2^3, ..."
    assert check_answer("Yes", sequence) == (False, "math-verify")
    assert check_answer(sequence, sequence) == (True, "math-verify")
    assert check_answer("1/8", sequence) == (True, "math-verify")
    assert check_answer("No, and the sequence is 1/2^3, ...", sequence) == (False, "math-verify")
    assert check_answer("No; the sequence 1/2^3, ... is not one", sequence) == (False, "math-verify")
    # math-verify reads nothing in this one: compared as text, the bare yes is not the whole answer
    many = "Yes, there are infinitely many"
    assert check_answer("Yes", many) == (False, "text")
    assert check_answer("Yes and no", many) == (False, "text")
    assert check_answer("Yes, there are infinitely many.", many) == (True, "text")


@pytest.mark.parametrize(
    ("prediction", "gold", "correct"),
    [("No such values.", "No such values", True), ("No such values exist", "No such values", False),
     ("No", "No such values", False), ("No idea", "No such values", False),
     ("No integer solutions", "No positive integer solutions", False),
     ("$\\boxed{\\text{No integer solutions}}$", "No integer solutions", True)],
)  # fmt: skip
def test_a_longer_free_form_gold_is_compared_as_words(prediction, gold, correct):
    assert check_answer(prediction, gold) == (correct, "text")


def test_a_student_s_yes_no_answer_is_graded_from_its_solution_section():
    def answered(solution: str) -> str:
        return f"<|begin_of_thought|>\n\nHm.\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\n{solution}\n\n"

    assert grade(answered("No, the sum is odd."), "No")[:2] == (True, "text")
    assert grade(answered("No idea."), "No")[:2] == (False, "text")
    assert grade(answered("So $\\boxed{\\text{Yes}}$."), "Yes")[:2] == (True, "text")
    assert grade(answered("Yes and no."), "Yes")[:2] == (False, "text")


@pytest.mark.parametrize(
    ("prediction", "gold", "correct", "method"),
    [  # the second review: operators were deleted as punctuation and a gold's prefix passed
        ("n(n-3)*2", "n(n-3)/2", False, "math-verify"), ("n + 1", "n", False, "text"),
        ("Alice or Bob", "Alice", False, "text"),
        ("No integer solutions exist, except 3", "No integer solutions", False, "text"),
        ("1", "2^{n} - 1", False, "math-verify"),  # plain parsing read this gold as its last number
        # and what must stay right: the same formula written otherwise, the same words, a value said in a sentence
        ("(n-3)n/2", "n(n-3)/2", True, "math-verify"), ("The answer is $\\frac{n(n-3)}{2}$.", "n(n-3)/2", True,
         "math-verify"), ("\\boxed{2^n-1}", "2^{n} - 1", True, "math-verify"),
        ("2*2^(n-1)", "2^n", True, "math-verify"),
        ("There are 76 such strings.", "76", True, "math-verify"), ("\\boxed{18 \\text{ dollars}}", "18", True,
         "math-verify"), ("Hence the count is $\\frac{n(n-3)}{2}$.", "n(n-3)/2", True, "math-verify"),
        ("x=\u00b11", "x=\u00b11", True, "math-verify"), ("**Alice**.", "Alice", True, "text"),
        ("alice", "Alice", True, "text"), ("a", "A", True, "text"), ("B", "A", False, "text"),  # a multiple choice
    ],
)  # fmt: skip
def test_formulas_are_compared_as_formulas_and_words_as_a_whole(prediction, gold, correct, method):
    assert check_answer(prediction, gold) == (correct, method)
