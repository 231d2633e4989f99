"""Tests of ml.common."""
