"""The diagnostics kit: evaluation plots and tables for BTYD and churnclv models (``ax=`` in, Axes out)."""
