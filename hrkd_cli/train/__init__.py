"""Training: the loop (trainer), evaluation, TinyBERT's general stage, and how transfer examples join the steps."""
