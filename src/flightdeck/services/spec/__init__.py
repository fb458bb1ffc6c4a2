"""Clusters as code: a virtual cluster as a spec (`model`), printed (`report`), applied
(`apply`)."""
