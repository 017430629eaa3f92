"""The benchmarks ``rsseg prepare`` knows, one module each, registered by ``@register_dataset``."""
