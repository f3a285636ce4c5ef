"""Serving: the BentoML HTTP service and the weekly batch job (churnclv.serving)."""
