"""Tests of ml.dx."""
