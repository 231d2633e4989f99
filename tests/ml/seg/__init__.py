"""Tests of ml.seg."""
