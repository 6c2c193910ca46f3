"""Data: Penn Treebank and WikiText-2 (text.py), DVS128 Gesture and its synthetic twin
(dvs.py, synthetic_dvs.py)."""
