"""Run by tests/test_trainer.py under `accelerate launch --multi_gpu --num_processes 2` and in one process.

With `use_cpu=True` (TrainingArguments) the two processes form a gloo group on the CPU. (In
accelerate 1.15, `accelerate launch --cpu --num_processes 2` starts one process unless an MPI
hostfile is given.)

Usage: python trainer_two_process.py OUTPUT_DIR GLOBAL_BATCH
Trains the MNIST-1D ConvNet with CoresetTrainer three times (static el2n scored by the warm-up, static
el2n scored on the untrained model, then CREST) with the global batch split over the processes, and
writes a summary JSON in OUTPUT_DIR (main process).
"""

import json
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)

from accelerate import PartialState  # noqa: E402

import hf_coreset  # noqa: E402
from hf_coreset import CoresetTrainer, CoresetTrainingArguments  # noqa: E402
from hf_coreset.data.mnist1d import make_convnet  # noqa: E402


def main(out: str, global_batch: int) -> None:
    state = PartialState(cpu=True)
    train = hf_coreset.data.load_mnist1d(num_samples=800)["train"]  # 640 rows: divisible by the global batch
    per_device = global_batch // state.num_processes
    common = dict(num_train_epochs=3, per_device_train_batch_size=per_device, learning_rate=5e-3, optim="adamw_torch",
                  report_to="none", save_strategy="no", disable_tqdm=True, logging_steps=1000, coreset_fraction=0.25,
                  coreset_warmup_epochs=1, per_device_eval_batch_size=128, dataloader_pin_memory=False, use_cpu=True)
    summary = {"processes": state.num_processes}
    static = CoresetTrainer(model=make_convnet(0), train_dataset=train, args=CoresetTrainingArguments(
        output_dir=f"{out}/static", coreset_method="el2n", **common))
    static.train()
    summary["static_steps"] = [static.state.global_step, static.state.max_steps]
    # Scores from the untrained model (an eval pass before the warm-up): the same weights in every run.
    untrained = CoresetTrainer(model=make_convnet(0), train_dataset=train, args=CoresetTrainingArguments(
        output_dir=f"{out}/epoch0", coreset_method="el2n", coreset_method_options={"epoch": 0}, **common))
    untrained.train()
    crest = CoresetTrainer(model=make_convnet(0), train_dataset=train, args=CoresetTrainingArguments(
        output_dir=f"{out}/crest", coreset_schedule="crest", crest_random_subset_fraction=0.1, **common))
    crest.train()
    summary["crest_steps"] = [crest.state.global_step, crest.state.max_steps]
    summary["crest_events"] = len(crest.coreset_events)
    if state.is_main_process:
        Path(out, "summary.json").write_text(json.dumps(summary))
    # Leave the process group before exiting: gloo's threads torn down at interpreter exit can abort
    # a process ("terminate called without an active exception").
    state.wait_for_everyone()
    state.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
