"""Experiments above the recipes: seed sweeps, ablations, few-shot points and their read-back, the report, benches."""
