"""Normalisers of every feature, in one place (docs/design.md §6.1: every feature O(1)).

The online agent and the offline pipeline import these constants; changing one changes the
feature schema hash, so checkpoints trained with the old value refuse to load.
"""

#: Prices are divided by this (std trading prices lie roughly in 5-60).
PRICE_NORM = 50.0
#: Lines per factory in std worlds (n_lines is divided by this).
N_LINES_NORM = 10.0
#: Quantities per day are divided by the factory's n_lines (a day's production capacity).
#: Inventory projections are divided by n_lines * INVENTORY_DAYS_NORM (ten days of production).
INVENTORY_DAYS_NORM = 10.0
#: Counts of live threads are divided by this.
THREADS_NORM = 10.0
#: Negotiation rounds are divided by this (std negotiations have at most 20 rounds).
ROUNDS_NORM = 20.0
#: Clip bound applied to every normalised feature, so that no input can explode.
FEATURE_CLIP = 10.0
