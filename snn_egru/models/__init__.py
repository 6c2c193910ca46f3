"""Workload models: the EGRU language model (lm.py) and the DVS gesture network (dvs.py)."""
