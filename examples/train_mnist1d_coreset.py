"""Train the MNIST-1D ConvNet on a coreset with CoresetTrainer: static `auto` (or any registered
method) after a warm-up, or adaptive CREST.

    python examples/train_mnist1d_coreset.py --output_dir out/mnist1d-auto
    python examples/train_mnist1d_coreset.py --output_dir out/mnist1d-nfg --coreset_method nfg
    python examples/train_mnist1d_coreset.py --output_dir out/mnist1d-crest --coreset_schedule crest
    accelerate launch --multi_gpu --num_processes 2 examples/train_mnist1d_coreset.py --use_cpu \
        --output_dir out/mnist1d-nfg-2p --coreset_method nfg

Every CoresetTrainingArguments / TrainingArguments field is a flag (`--help` lists them). On a
machine without GPUs, `--use_cpu` makes the processes of `accelerate launch --multi_gpu` form a
CPU (gloo) group; `accelerate launch --cpu --num_processes 2` also runs the script, but accelerate
1.15 starts a single process for it unless an MPI hostfile is given.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
from transformers import HfArgumentParser

import hf_coreset
from hf_coreset import CoresetTrainer, CoresetTrainingArguments
from hf_coreset.data.mnist1d import make_convnet

DEFAULTS = {"num_train_epochs": "20", "per_device_train_batch_size": "128", "learning_rate": "1e-2",
            "lr_scheduler_type": "cosine", "optim": "adamw_torch", "weight_decay": "0.0", "report_to": "none",
            "save_strategy": "no", "eval_strategy": "epoch", "logging_steps": "50", "coreset_fraction": "0.1",
            "coreset_warmup_epochs": "5", "per_device_eval_batch_size": "1024", "dataloader_pin_memory": "False"}


@dataclass
class DataArguments:
    num_samples: int = field(default=50000, metadata={"help": "MNIST-1D rows generated (80%% train, 20%% test)."})
    model_seed: int = field(default=0, metadata={"help": "Seed of the ConvNet's initial weights."})


def parse(argv: list[str]):
    given = {a.split("=")[0] for a in argv if a.startswith("--")}
    for key, value in DEFAULTS.items():  # this example's defaults; any flag on the command line wins
        if f"--{key}" not in given:
            argv = argv + [f"--{key}", value]
    if "--coreset_schedule" not in given and "--coreset_method" not in given:
        argv = argv + ["--coreset_method", "auto"]  # reads the warm-up's last epoch (5)
    try:
        return HfArgumentParser((DataArguments, CoresetTrainingArguments)).parse_args_into_dataclasses(argv)
    except ValueError as err:
        if "Unknown coreset method" in str(err):
            sys.exit(f"error: {err}\nThis hf-coreset has no such method; pass --coreset_method with one of the known "
                     "methods, or --coreset_schedule crest.")
        raise


def accuracy(eval_pred) -> dict:
    logits, labels = eval_pred
    return {"accuracy": float((np.argmax(logits, axis=1) == labels).mean())}


def main(argv: list[str]) -> None:
    data_args, args = parse(argv)
    data = hf_coreset.data.load_mnist1d(num_samples=data_args.num_samples)
    trainer = CoresetTrainer(model=make_convnet(data_args.model_seed), args=args, train_dataset=data["train"],
                             eval_dataset=data["test"], compute_metrics=accuracy)
    trainer.train()
    metrics = trainer.evaluate()
    trainer.save_model()
    trainer.create_model_card(model_name=f"mnist1d-convnet-{args.coreset_method or args.coreset_schedule}")
    if trainer.is_world_process_zero():
        kept = len(trainer.coreset_selection) if trainer.coreset_selection is not None else "-"
        print(f"schedule={args.coreset_schedule} method={args.coreset_method} kept={kept} "
              f"steps={trainer.state.global_step} test accuracy={metrics['eval_accuracy']:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
