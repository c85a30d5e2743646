"""One recipe per command (prepare, teach, distill, evaluate, export, predict, inspect_ratios), each taking the
paths of its inputs; none imports another. hrkd_cli/pipeline.py runs a command's prerequisites first."""
