"""Writes of the detection app, split by topic: configs, modelling (model versions), scoring, runs."""
