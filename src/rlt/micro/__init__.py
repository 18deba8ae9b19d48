"""The countdown micro-world: the paper's experiment at a size two cores afford.

    tokenizer  one token a number or word, a chat template; every rlt command reads its texts unchanged
    base       the base model (`countdown-tiny`): a tiny Llama built from scratch on arithmetic facts, pool
               bookkeeping, repeated lists and restated questions, cached on first use

The roles follow the paper: the generator's search traces are the expert data (R1's traces), the base distilled on
them is the reward's student (Bespoke-Stratos), the teacher is the base warmed up and trained by `rlt train`.
"""
