"""The lab: every experiment a chapter runs or plots, one module per chapter experiment.

- ``deep_stack``, ``stack_training``: chapter 1 (a deep MLP stack at initialisation, and trained)
- ``conditioning``: chapter 3 (adaLN-Zero against concatenation on two synthetic tasks)
- ``memory``: chapter 5 (the bytes a norm saves for its backward)
- ``char_data``, ``models``, ``training``: chapter 6 (the character-level Transformer, its data,
  its training runs and grids)
- ``frontier_models``, ``frontier``: chapter 8 (chapter 6's model with QK-norm, new placements,
  DyT and depth scaling; its three grids)

The math these use lives at the top of :mod:`normlab`; nothing there imports from here.
Grids that write committed results run from one command line, ``python -m normlab.experiments
<name>`` (see :mod:`normlab.experiments.__main__`).
"""
