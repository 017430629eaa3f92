"""Raster and vector input/output."""
