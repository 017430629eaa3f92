"""Class masks to GIS polygons: windowed polygonisation with seamless stitching, coverage simplification."""

from rsseg.vector.vectorize import VectorizeSummary, vectorize_mask

__all__ = ["VectorizeSummary", "vectorize_mask"]
