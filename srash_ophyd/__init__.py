"""srash_ophyd package."""
