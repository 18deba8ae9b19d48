"""A labelled set of sentences that do or do not state a final answer: the yardstick of `rlt.measure.leakage`.

Each sentence is written for an answer, and labelled by what it does with it, not by whether the answer's text
appears in it. Statements conclude with the answer in many phrasings ("Thus 76 is the answer.", "So the remainder
is 76."). Near-misses contain the answer without concluding with it: a step that uses it, a hypothesis, a
rejection, a longer number that starts with it. Numbers are written for four answers (two short ones, which a bare
mention must not count for, a longer one and a fraction); yes/no sentences for "No".

The rules of `rlt.measure.leakage` were written against this development set; a held-out set in other words (and
answers), written before it was first measured and never tuned on, says how far they carry. `measure()` gives
recall (the share of statements found) and precision (the share of flagged sentences that are statements) on
each, with every miss and false alarm listed: what a stripper misses is measured here, not assumed.
"""

from __future__ import annotations

STATEMENTS = [
    "Thus {a} is the answer.", "The answer to this question is {a}.", "So the remainder is {a}.",
    "Therefore, the answer is {a}.", "The final answer is {a}.", "Answer: {a}", "So the answer must be {a}.",
    "Hence the result is {a}.", "We conclude that the answer is {a}.", "So n = {a}.", "Our answer is therefore {a}.",
    "It follows that the value is {a}.", "The required number is {a}.", "\\boxed{{{a}}}",
    "Therefore the sum equals {a}.", "{a} is our final answer.", "The answer should be {a}.",
    "Thus, the minimum is {a}.", "So the total is {a}.", "This gives {a} as the answer.",
    "Putting it together, we get {a}.", "So there are {a} ways in all.", "The count comes to {a}.",
    "Finally, x = {a}.", "That is, the answer is **{a}**.", "So the number of solutions is {a}.",
    "Thus the probability is {a}.", "Hence, {a}.", "In total we have {a}.", "The largest possible value is {a}.",
]  # fmt: skip
NEAR_MISSES = [
    "Multiply {a} by 2 first.", "We first try {a} and find it fails.", "Let n = {a} + k.",
    "Is the answer {a}? Let us check.", "The answer is not {a}.", "There are {a}0 ways.",
    "After {a} steps the pattern repeats.", "Note that {a} divides the total.", "Page {a} of the table lists them.",
    "We need {a} mod 5.", "Suppose the answer were {a}; then we reach a contradiction.",
    "Adding {a} and 4 gives the next term.", "If x = {a} + 1, then the sum grows.", "Consider the case n < {a}.",
    "The first {a} terms are small.", "So far we have used {a} of the tiles.", "Compare it with 1{a}.",
    "{a} is too small to work.", "Try {a}: it fails.", "The remainder is not {a}.", "It cannot be {a}.",
    "We reject {a}.", "The answer is larger than {a}.", "Using {a} as a bound, we continue.",
    "The table has {a} rows, not enough.",
]  # fmt: skip
NUMERIC_ANSWERS = ["76", "3", "150", "1/2"]
YES_NO_STATEMENTS = [
    "The answer is no.", "No, it cannot be done.", "So no, such a set does not exist.", "Answer: No",
    "Thus the answer is no.", "\\boxed{No}", "No: the parity forbids it.", "Therefore, no.", "The final answer is No.",
    "Hence the answer must be no.",
]  # fmt: skip
YES_NO_NEAR_MISSES = [
    "There is no solution here.", "No two of them are equal.", "Nobody wins.", "No idea yet; continue.",
    "It is not known.", "We have no choice.", "None of them work.", "Not all numbers are prime.",
    "The answer is not no.", "Is the answer no? Check.",
]  # fmt: skip


HELD_OUT_STATEMENTS = [
    "Consequently, the desired quantity is {a}.", "We find that exactly {a} arrangements work.",
    "The maximum therefore equals {a}.", "This shows the answer is {a}.", "Overall, the result comes to {a}.",
    "The solution is x = {a}.", "Therefore he has {a} marbles.", "So {a} is the smallest such number.",
    "All in all, {a}.", "The expected value works out to {a}.",
]  # fmt: skip
HELD_OUT_NEAR_MISSES = [
    "Write {a} as a sum of two squares.", "Since {a} is even, we split it.", "Each of the {a} boxes holds one ball.",
    "We check whether {a} works.", "Dividing by {a} gives the rate.", "The bound {a} is not tight.",
    "At least {a} is needed, but more may be.", "Assume the count is {a} for now.",
    "Ignoring the case n = {a}, we proceed.", "{a}0 is too many.",
]  # fmt: skip
HELD_OUT_ANSWERS = ["42", "7", "2500"]
HELD_OUT_YES = [("Yes, such a colouring exists.", True), ("So the answer is yes.", True),
                ("Hence yes: it is possible.", True), ("Yesterday we computed it.", False),
                ("We say yes only when n is odd.", False), ("Yes or no, we must decide.", False)]  # fmt: skip


def labelled(part: str = "development") -> list[tuple[str, str, bool]]:
    """(sentence, answer, states it) for every sentence of one part of the set: development or held out."""
    if part == "held out":
        rows = [(t.format(a=a), a, True) for a in HELD_OUT_ANSWERS for t in HELD_OUT_STATEMENTS]
        rows += [(t.format(a=a), a, False) for a in HELD_OUT_ANSWERS for t in HELD_OUT_NEAR_MISSES]
        return rows + [(t, "Yes", label) for t, label in HELD_OUT_YES]
    rows = [(t.format(a=a), a, True) for a in NUMERIC_ANSWERS for t in STATEMENTS]
    rows += [(t.format(a=a), a, False) for a in NUMERIC_ANSWERS for t in NEAR_MISSES]
    rows += [(t, "No", True) for t in YES_NO_STATEMENTS] + [(t, "No", False) for t in YES_NO_NEAR_MISSES]
    return rows


def measure(part: str = "development") -> dict:
    """Recall and precision of `states_answer` on one part of the set, overall and by answer, with the misses and
    false alarms."""
    from rlt.measure.leakage import states_answer

    rows = labelled(part)
    said = [states_answer(text, answer) for text, answer, _ in rows]
    result = {"sentences": len(rows), "statements": sum(label for *_, label in rows)}
    for answer in [None, *sorted({answer for _, answer, _ in rows})]:
        picked = [(row, s) for row, s in zip(rows, said, strict=True) if answer is None or row[1] == answer]
        found = sum(s and label for (*_, label), s in picked)
        flagged = sum(s for _, s in picked)
        result["all" if answer is None else answer] = {
            "recall": found / sum(label for (*_, label), _ in picked),
            "precision": found / flagged if flagged else 1.0,
        }
    result["misses"] = [[text, answer] for (text, answer, label), s in zip(rows, said, strict=True) if label and not s]
    result["false_alarms"] = [[text, answer] for (text, answer, label), s in zip(rows, said, strict=True)
                              if s and not label]  # fmt: skip
    return result
