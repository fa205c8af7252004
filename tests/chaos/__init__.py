"""The crash harness of the event backbone: `python -m tests.chaos` (or `make chaos`).

Worker processes consume a stream of keyed messages with side effects recorded in a table while the
harness SIGKILLs them at random points and restarts them; afterwards it counts lost and duplicate
effects, keys applied out of order and timers that did not fire exactly once. See docs/backbone.md.
"""
