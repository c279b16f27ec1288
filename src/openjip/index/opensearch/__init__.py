"""The OpenSearch backend of the metadata index (:class:`OpenSearchIndex`), for sites whose
services run on many nodes."""

from openjip.index.opensearch.index import OpenSearchIndex

__all__ = ["OpenSearchIndex"]
