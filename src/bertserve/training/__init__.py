"""Fine-tuning and evaluating a classifier: the config (`config`), the training loop (`loop`),
resumable checkpoints (`checkpoint`), the run folder (`run_folder`), evaluation (`evaluate`),
classification scores (`scores`) and run-folder plots (`plots`)."""
