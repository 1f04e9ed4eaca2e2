"""Scaling-law sweeps over CWM-shaped models: plan runs, run or emit them, collect losses, fit power laws."""
