"""bench/early_stopping.py's parts: the workload, the tools, the Slurm run, the tables."""
