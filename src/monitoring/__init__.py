"""Scores checked against what customers then did, and drift between training and this week."""
