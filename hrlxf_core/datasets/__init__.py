"""Datasets: macro (L2) and micro (L3) samples built from tracker tables with polars/numpy."""
