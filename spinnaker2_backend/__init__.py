"""spinnaker2_backend: a simulated SpiNNaker2 chip that maps, runs and measures EGRU networks.

numpy/scipy only; no torch, no Lava.
"""
