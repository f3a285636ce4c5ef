"""Point-in-time feature jobs, labels and rolling cutoffs (Ibis expressions; DuckDB by default)."""
