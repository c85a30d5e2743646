"""The models: encoders and heads, pre-trained loading, checkpoints, the distillation losses, the relational
graph and its meta training, the KD model, the Meta-KD modules and the baselines' modules and losses. Model
code takes the settings it reads (a preset section, numbers); nothing here reads a preset file or a run
directory layout; the trainers and recipes do."""
