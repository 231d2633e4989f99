"""Tests of ml.ldquant."""
