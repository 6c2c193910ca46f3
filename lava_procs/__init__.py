"""lava_procs: the EGRU as Lava (lava-nc 0.10) processes.

Process models: tag ``floating_pt`` (numpy reference) and tag ``spinnaker2`` (the simulated
chip of ``spinnaker2_backend``). No torch in this package.
"""
