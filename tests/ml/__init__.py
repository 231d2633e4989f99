"""Tests of the ml package (LBNet-Dx building blocks)."""
