"""Training: world-level splits, prepared-array caches, the fit loop, checkpoints, lineage."""
