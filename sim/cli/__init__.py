"""The command line: `python -m sim MODEL [options]` (`make sim`).

options.py  the options, checked before any work
models.py   models by name (`MODEL=gpt2`) or `package.module:function`
report.py   compile and run reports: console table, report.md/json, instruction log
dumps.py    mismatch tensors (.npz) and error heatmaps (.png)
main.py     the flow: options -> model -> compile -> golden -> run -> reports
"""

from sim.cli.main import main

__all__ = ["main"]
