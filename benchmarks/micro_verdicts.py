"""Where a micro-world student's greedy answers fail: reaching the target, saying so, or writing it up (§12f).

For each `rlt eval` JSON (greedy records), counts the answers whose think section
- makes the target in a last-pair line (one of its results there is the question's target): the search got there;
- ends its search on the target ("= 37. Yes!", or "= 37!" in a marked format): the verdict was right;
- of those, whose solution section restates the question ("Target 37, numbers 7, 5, 2.") and holds both steps of the
  path the search ended on (its last "Try" move and the move that made the target), copied;
- of those, whose path (those two steps) is a right answer by the exact checker, and of these how many are graded
  wrong: the search solved the problem and the solution section failed to write it up (§12h);
- and are graded correct (the solution section's answer checks).

    python benchmarks/micro_verdicts.py runs/micro-v5/eval-traces-0.json runs/micro-v9/eval-traces-0.json \\
        --out benchmarks/results/micro_verdicts.json
"""

from __future__ import annotations

import argparse
import json
import re

from rlt.data.countdown import Countdown


def verdicts(records: list[dict]) -> dict[str, int]:
    counts = {"answers": len(records), "target_made_in_a_last_pair": 0, "search_ends_on_the_target": 0,
              "then_solution_restates_the_question": 0, "then_solution_copies_both_steps": 0,
              "then_the_path_is_right": 0, "right_path_graded_wrong": 0, "correct": 0}  # fmt: skip
    for record in records:
        target, numbers = re.search(r"Make (\d+) from the numbers ([\d, ]+)\.", record["question"]).groups()
        think, _, solution = record["completion"].partition("</think>")
        last_pairs = [line for line in think.split("\n") if line.startswith("  ") and "Try" not in line]
        made = [result for line in last_pairs for result in re.findall(r"= (\d+)", line)]
        counts["target_made_in_a_last_pair"] += target in made
        ends = re.findall(r"= (\d+)(?:!|\. Yes!)", think)
        if ends and ends[-1] == target:
            counts["search_ends_on_the_target"] += 1
            counts["then_solution_restates_the_question"] += f"Target {target}, numbers {numbers}." in solution
            moves = re.findall(r"Try (\d+ [-+*/] \d+ = \d+), left", think)
            stops = re.findall(r"(\d+ [-+*/] \d+ = \d+)(?:!|\. Yes!)", think)
            copied = bool(moves and stops) and moves[-1] in solution and stops[-1] in solution
            counts["then_solution_copies_both_steps"] += copied
            problem = Countdown(tuple(map(int, numbers.split(", "))), int(target))
            if moves and stops and problem.check(f"{moves[-1]}, {stops[-1]}.")[0]:
                counts["then_the_path_is_right"] += 1
                counts["right_path_graded_wrong"] += not record["correct"]
        counts["correct"] += bool(record["correct"])
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("evals", nargs="+")
    parser.add_argument("--out", default="benchmarks/results/micro_verdicts.json")
    args = parser.parse_args()
    results = {}
    for path in args.evals:
        with open(path) as f:
            results[path] = verdicts(json.load(f)["records"])
    with open(args.out, "w") as f:
        json.dump({"command": "python benchmarks/micro_verdicts.py " + " ".join(args.evals), "results": results}, f,
                  indent=1)  # fmt: skip
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
