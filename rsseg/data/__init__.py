"""Datasets: class tables, patch folders, dataset preparation."""
