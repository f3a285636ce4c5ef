"""Models: BTYD (BG/NBD, Pareto/NBD, MBG/NBD with Gamma-Gamma), LightGBM, the scorer."""
