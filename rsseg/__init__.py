"""rsseg: semantic segmentation of very large remote-sensing scenes."""

__version__ = "0.1.0"
