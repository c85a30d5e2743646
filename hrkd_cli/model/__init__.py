"""The models: encoders and heads, pre-trained loading, checkpoints, the distillation losses, the relational
graph and its meta training, the KD model, and the Meta-KD modules. Nothing here reads a preset file or a run
directory layout; the recipes do."""
