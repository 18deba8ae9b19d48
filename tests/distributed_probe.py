"""Run an `rlt` command as `rlt` runs it (under `accelerate launch`) and record, per rank, what the launch really set
up and what the training produced: `<output_dir>/probe.rank<N>.json`.

A distributed test that only checks the exit code proves little: accelerate falls back to plain DDP without a word
(`use_cpu: true` under a DeepSpeed or FSDP config). So every trainer the command builds gets a callback that writes
the distributed type, the ZeRO stage, how the policy's and the student's weights are held on this rank, and, when
training ends, the trained policy's log-probs of fixed tokens, to compare with the model the command saves.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import TrainerCallback

from rlt.reward.students import student_rewards

#: Tokens whose log-probs under the trained policy are recorded (ids every tiny test vocabulary holds).
PROBE_IDS = list(range(3, 40))


def token_logprobs(model: torch.nn.Module, ids: list[int]) -> list[float]:
    """log p(ids[i] | ids[:i]) for i ≥ 1, with dropout off (LoRA's would make it random)."""
    from rlt.reward.logprobs import eval_mode

    tokens = torch.tensor([ids])
    with eval_mode(model), torch.no_grad():
        logits = model(input_ids=tokens).logits[0, :-1].float()
    return torch.log_softmax(logits, dim=-1).gather(1, tokens[0, 1:, None])[:, 0].tolist()


def holding(model: torch.nn.Module) -> dict:
    """How this rank holds the weights: all of them whole, or ZeRO-3 partitions (a slice here, a placeholder in the
    module)."""
    params = list(model.parameters())
    partitioned = [p for p in params if hasattr(p, "ds_id")]
    return {
        "parameters": len(params),
        "partitioned": len(partitioned),
        "elements_in_module": sum(p.numel() for p in params),
        "elements_in_this_rank_slice": sum(p.ds_tensor.numel() for p in partitioned),
        "elements_whole": sum(p.ds_numel for p in partitioned),
    }


class Probe(TrainerCallback):
    def __init__(self, trainer):
        self.trainer = trainer
        self.record: dict = {}

    def on_train_begin(self, args, state, control, **kwargs):
        trainer, accelerator = self.trainer, self.trainer.accelerator
        plugin = accelerator.state.deepspeed_plugin
        optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # under accelerate's wrapper
        self.record = {
            "distributed_type": accelerator.distributed_type.value,
            "zero_stage": plugin.zero_stage if plugin is not None else None,
            "process_index": accelerator.process_index,
            "num_processes": accelerator.num_processes,
            "optimizer": type(optimizer).__name__,
            "policy": holding(trainer.model),
        }
        reward = getattr(trainer, "rlt_reward", None)
        if reward is not None:  # each student's placement; `student`: the first's
            students = [{"class": type(r.student).__name__, **holding(r.student)} for r in student_rewards(reward)]
            self.record["student"], self.record["students"] = students[0], students

    def on_train_end(self, args, state, control, **kwargs):
        # A forward through the wrapped model: under ZeRO-3 every rank takes part in gathering each layer.
        self.record["trained_logprobs"] = token_logprobs(self.trainer.model_wrapped, PROBE_IDS)
        path = Path(args.output_dir) / f"probe.rank{self.record['process_index']}.json"
        path.write_text(json.dumps(self.record))


_train = transformers.Trainer.train


def probed_train(self, *args, **kwargs):
    self.add_callback(Probe(self))
    return _train(self, *args, **kwargs)


if __name__ == "__main__":
    from rlt.cli import main

    transformers.Trainer.train = probed_train
    sys.exit(main(sys.argv[1:]))
