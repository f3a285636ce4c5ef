"""Campaigns: stable control groups, measured uplift of retention actions, targeting by incremental value."""
