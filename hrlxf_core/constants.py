"""Constants shared by the tracker, the state builder and the models.

One place, so that online (agent) and offline (pipeline) code cannot disagree about them.
"""

#: Planning horizon of the features, in days (docs/design.md §6): commitment vectors and X_temporal
#: have one entry per delivery offset δ = 0..H.
H: int = 40

#: Number of delivery offsets recorded in a day-start commitment vector (δ = 0..H).
N_OFFSETS: int = H + 1

#: Version of the tracker's record layout; bump when a table's columns change meaning.
#: v3: worlds.agent_slots, agent_exceptions, agent_first_exception, world_exceptions;
#: day_states/decisions.after_exception.
RECORD_SCHEMA_VERSION: int = 3
