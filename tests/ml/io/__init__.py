"""Tests of ml.io."""
