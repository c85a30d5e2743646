"""hrkd: Hierarchical Relational Knowledge Distillation for multi-domain language model compression."""

__version__ = "0.1.0"
