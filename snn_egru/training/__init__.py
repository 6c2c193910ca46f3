"""Training: shared loop pieces (common.py), the language model (lm.py), DVS gestures (dvs.py)."""
