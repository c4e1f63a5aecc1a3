"""Knacka: a backend for canvassing and campaign field work."""
