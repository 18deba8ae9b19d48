"""Sampling from a teacher or a student (`generation`: transformers' generate or vLLM) and collecting a teacher's
explanations as distillation data (`traces`)."""
