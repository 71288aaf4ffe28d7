"""Simulation: roster, decision tracking and the hang-proof collection runner."""
