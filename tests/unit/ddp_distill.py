"""Launched by test_distill_core.py, alone or under torchrun: task-distil a tiny teacher on a CSV and save the student.

argv: teacher folder, train csv, dev csv, output folder, batch size, attention-loss weight.
"""

from __future__ import annotations

import sys

import torch

from tinybert_edge.config import DistillConfig
from tinybert_edge.data import load_data
from tinybert_edge.distillation.task_distillation import distill

if __name__ == "__main__":
    teacher, train_csv, dev_csv, out, batch = sys.argv[1:6]
    torch.set_num_threads(1)
    config = DistillConfig(student="teacher-layers:2", intermediate_epochs=1, prediction_epochs=1,
                           batch_size=int(batch), learning_rate=1e-3, max_length=32, eval_every=1000, log_every=1,
                           checkpoint_every=1000, attention_weight=float(sys.argv[6]))
    distill(teacher, load_data(train_csv), load_data(dev_csv), out, config, progress=False)
