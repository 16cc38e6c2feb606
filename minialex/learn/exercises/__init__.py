"""The exercise files of the learner's track, one per op: the pure pairs of minialex.nn.functional
with their bodies left to write. ``python -m minialex learn start DIR`` copies them out (never
edit them here), ``python -m minialex learn check OP FILE`` grades a filled-in copy."""
