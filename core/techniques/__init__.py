"""Deployment techniques for a converted SNN: fewer timesteps (search and early exit), less
spiking activity (threshold scaling, activity-aware calibration), fewer cores (packing), work
moved to the host (offload), and the Pareto search over all of them (`search`)."""
