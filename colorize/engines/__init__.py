"""Engines turn batches of line-art frames into colored frames; see `base.Engine`."""
