"""Shared base of the ml applications: errors, processing, metrics, Dice, figures, file
and weights I/O, torch helpers."""
