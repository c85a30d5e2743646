"""One recipe per command: setup, train, save. The CLI calls these and nothing else."""
