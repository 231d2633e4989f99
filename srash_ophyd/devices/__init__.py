"""The ophyd devices of the SRASH microscope, one module per device, each over its part simulator
(``_sim``: the backend plumbing; ``microscope``/``factory``: the assembled instrument)."""
