"""The analytic performance model of the Loom core (docs/perf.md): each instruction's
cycles on the RTL from its decoded fields and the hardware config, laid out by a
schedule (today's sequential core, or an overlapped what-if), summed per layer and per
layer kind, and checked against the RTL. `python -m perf predict|explore`."""
