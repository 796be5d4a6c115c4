"""Training: the loop shared by fine-tuning and both distillation stages (`loop`), and teacher fine-tuning
(`finetune`)."""
