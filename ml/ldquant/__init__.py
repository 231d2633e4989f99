"""Lipid-droplet quantification per seminiferous tubule and its group statistics."""
