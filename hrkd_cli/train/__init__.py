"""Training: the loop (trainer), the one setup every trainer calls (setup), the method registry (methods),
the student trainers (students, distill, baselines), the meta-teacher's training, evaluation, TinyBERT's
general stage, and how transfer examples join the steps."""
