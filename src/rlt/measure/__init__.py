"""Measuring: scoring explanations with the reward (`scoring`), grading students (`evaluate`), comparing explanation
sources (`teaching`), checking the reward ranks real explanations first (`reward_check`), and their statistics
(`stats`) and answer-leakage detection (`leakage`)."""
