"""Verification of the RTL beyond hand-written tests: constrained-random programs.

- case.py      a fuzz case (program, start pc, DRAM image recipe) and its assembly file
- generate.py  legal programs from constraints, and programs that fault by design
- run.py       one case on the RTL in lockstep with the ISA model; the verdict
- shrink.py    a failing case reduced to a minimal program
- __main__.py  `python -m verif fuzz` (`make fuzz SEED=s N=n`) and `rerun FILE.s`

The generator needs only the contract; running needs the ISA model and the RTL backend.
"""
