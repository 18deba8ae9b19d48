"""Training: what every training command shares (`runs`), teacher warm-up and student distillation (`sft`), teacher
RL with the RLT reward (`trainer`), and student RL on correctness (`coldstart`)."""
